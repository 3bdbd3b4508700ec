package emulator

import (
	"encoding/json"
	"net/http"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// discovery builds the OpenID configuration for a tenant path (reference
// §1.2). All URLs use the host the client addressed. The issuer carries the
// literal "{tenantid}" for common/organizations/consumers, the tenant GUID
// otherwise.
func (e *Emulator) discovery(r *http.Request, v2 bool) (map[string]any, *Error) {
	cloud := e.cloudOf(r)
	ref, aerr := e.ResolveTenant(r, cloud)
	if aerr != nil {
		return nil, aerr
	}
	base := e.BaseURL(r)
	seg := ref.Segment
	tid := "{tenantid}"
	region := any(nil)
	if ref.Tenant != nil {
		tid = ref.Tenant.ID
		region = "WW"
	}
	if ref.Kind == TenantConsumers {
		tid = ConsumerTenantID
	}
	d := map[string]any{
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://" + cloud.GraphHost + "/oidc/userinfo",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		"tenant_region_scope":           region,
		"cloud_instance_name":           cloud.InstanceName,
		"cloud_graph_host_name":         "graph.windows.net",
		"msgraph_host":                  cloud.GraphHost,
		"rbac_url":                      "https://pas.windows.net",
		"kerberos_endpoint":             base + "/" + seg + "/kerberos",
		"device_authorization_endpoint": base + "/" + seg + "/oauth2/v2.0/devicecode",
	}
	if v2 {
		d["token_endpoint"] = base + "/" + seg + "/oauth2/v2.0/token"
		d["jwks_uri"] = base + "/" + seg + "/discovery/v2.0/keys"
		d["issuer"] = base + "/" + tid + "/v2.0"
		d["authorization_endpoint"] = base + "/" + seg + "/oauth2/v2.0/authorize"
		d["end_session_endpoint"] = base + "/" + seg + "/oauth2/v2.0/logout"
	} else {
		d["token_endpoint"] = base + "/" + seg + "/oauth2/token"
		d["jwks_uri"] = base + "/" + seg + "/discovery/keys"
		d["issuer"] = "https://sts.windows.net/" + tid + "/"
		d["authorization_endpoint"] = base + "/" + seg + "/oauth2/authorize"
		d["end_session_endpoint"] = base + "/" + seg + "/oauth2/logout"
		d["device_authorization_endpoint"] = base + "/" + seg + "/oauth2/devicecode"
	}
	return d, nil
}

func (e *Emulator) serveDiscovery(w http.ResponseWriter, r *http.Request, v2 bool) {
	d, aerr := e.discovery(r, v2)
	if aerr != nil {
		e.WriteError(w, r, aerr)
		return
	}
	w.Header().Set("Cache-Control", "max-age=86400, private")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("x-ms-request-id", newGUID())
	writeJSON(w, http.StatusOK, d)
}

func (e *Emulator) handleDiscoveryV2(w http.ResponseWriter, r *http.Request) {
	e.serveDiscovery(w, r, true)
}
func (e *Emulator) handleDiscoveryV1(w http.ResponseWriter, r *http.Request) {
	e.serveDiscovery(w, r, false)
}

// handleInstanceDiscovery answers MSAL's instance discovery
// (/common/discovery/instance) with the cloud's aliases, so MSAL also works
// without WithInstanceDiscovery(false).
func (e *Emulator) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	cloud := e.cloudOf(r)
	host := r.Host
	aliases := append([]string{host, cloud.LoginHost}, cloud.Aliases...)
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": e.BaseURL(r) + "/common/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []any{map[string]any{
			"preferred_network": host, "preferred_cache": host, "aliases": aliases,
		}},
	})
}
