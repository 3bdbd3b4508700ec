// A real, certified OpenID Provider (npm oidc-provider) for mailoauth's
// integration tests, on 127.0.0.1 only.
//
// Usage: node server.js CONFIG.json
// CONFIG.json: {"port": 0, "clients": [ ...oidc-provider client metadata... ]}
// When listening it prints one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// and serves until killed (or until its stdin closes, so a crashed test
// never leaves it behind).
//
// What is relaxed compared with a production deployment (all on purpose,
// all harmless on loopback), and what is stricter:
// - the issuer is http://127.0.0.1:PORT, not https (oidc-provider permits it
//   outside production; cookies are then not "secure");
// - devInteractions are on: the login form accepts any login and password,
//   and the consent page grants whatever was asked. Tests drive both over
//   HTTP with a cookie jar (or in Chromium, browser.js);
// - every client with a redirect is application_type "native", so its
//   http://127.0.0.1/callback matches on any port (RFC 8252 §7.3), the way
//   Microsoft treats localhost redirects;
// - the in-memory adapter and keys generated at start: nothing persists;
// - refresh tokens rotate on every use (rotateRefreshToken: true, like
//   Microsoft), so rotation is observable; the spent one is then refused;
// - stricter: PKCE is required for every client, not only public ones;
// - oidc-provider 9 warns "Unsupported runtime" on node 20 (it wants 22+);
//   every flow used here passes on node 20.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// Resource servers (RFC 8707 resource indicators). Mail scopes belong to
// them, so access tokens for mail carry an audience a mail server checks:
// - urn:mailoauth:mail: opaque tokens, validated by introspection (Dovecot's
//   oauth2 passdb with introspection_mode = post);
// - urn:mailoauth:mail-jwt: RFC 9068 JWT access tokens, validated locally
//   with the provider's JWKS. Ask for it with resource=urn:mailoauth:mail-jwt.
const MAIL_SCOPES = ['mail', 'imap', 'pop', 'smtp'];
const RESOURCES = {
  'urn:mailoauth:mail': { format: 'opaque' },
  'urn:mailoauth:mail-jwt': { format: 'jwt' },
};

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'k1' };
}

const asList = (scope) => (typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []);

async function run() {
  const host = '127.0.0.1';
  // Listen first, so the issuer can carry the real port.
  const { createServer } = await import('node:http');
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port || 0, host, resolve);
  });
  const { port } = server.address();
  const issuer = `http://${host}:${port}`;

  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'profile', 'email', ...MAIL_SCOPES],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() { return { sub, email: sub.includes('@') ? sub : `${sub}@example.test`, email_verified: true, name: sub }; },
      };
    },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Mail scopes without an explicit resource go to the opaque one.
        async defaultResource(ctx, client, oneOf) {
          if (oneOf) return oneOf;
          const scopes = asList(ctx.oidc.params?.scope);
          return scopes.some((s) => MAIL_SCOPES.includes(s)) ? 'urn:mailoauth:mail' : undefined;
        },
        async useGrantedResource() { return true; },
        async getResourceServerInfo(ctx, resourceIndicator) {
          const r = RESOURCES[resourceIndicator];
          if (!r) throw new Provider.errors.InvalidTarget();
          return {
            scope: MAIL_SCOPES.join(' '),
            audience: resourceIndicator,
            accessTokenFormat: r.format,
            accessTokenTTL: 3600,
            ...(r.format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
          };
        },
      },
    },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    async issueRefreshToken(ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    ttl: {
      AccessToken: 3600, AuthorizationCode: 600, DeviceCode: 600, Grant: 86400,
      IdToken: 3600, Interaction: 600, RefreshToken: 86400, Session: 86400,
      ClientCredentials: 3600,
    },
  });
  provider.on('server_error', (ctx, err) => { console.error('server_error', err); });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);

  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
