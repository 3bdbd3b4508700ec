#!/usr/bin/env python3
"""Log in with Python's standard library mail clients and a token from mailoauth.

The recipe of docs/mail-clients.md ("Python"), driven by internal/e2e's
integration test against a real Dovecot:

    pyclients.py PROTO SECURITY MECH HOST PORT CAFILE ACCOUNT [RCPT SUBJECT]

PROTO is imap, pop3 or smtp; SECURITY is tls (implicit TLS) or starttls;
MECH is xoauth2 or oauthbearer. The SASL initial response comes ready-made
from `$MAILOAUTH token ACCOUNT --sasl MECH --resource PROTO` ($MAILOAUTH is
the mailoauth binary, default "mailoauth"), so this script never sees the
bare token. For smtp with RCPT and SUBJECT it also sends a message.

It prints one JSON object on stdout:
  {"ok": true, "detail": "..."}                     login worked
  {"ok": false, "challenge": {...}, "reply": "..."}  the server refused it
and exits 0 when the login worked, 1 when the server refused it, 2 on any
other error. TLS is always verified against CAFILE.
"""

import base64
import imaplib
import json
import os
import poplib
import smtplib
import ssl
import subprocess
import sys


def sasl_initial_response(account, mech, proto):
    """The base64 SASL initial response `mailoauth token --sasl` prints."""
    resource = {"imap": "imap", "pop3": "pop", "smtp": "smtp"}[proto]
    out = subprocess.run(
        [os.environ.get("MAILOAUTH", "mailoauth"), "token", account, "--sasl", mech, "--resource", resource],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def ack(mech):
    """What the client answers to an error challenge before the server's final
    failure: %x01 for OAUTHBEARER (RFC 7628 3.2.3), an empty response for
    XOAUTH2."""
    return b"\x01" if mech == "oauthbearer" else b""


class Refused(Exception):
    """The server refused the login; challenge is its decoded JSON (if any)."""

    def __init__(self, reply, challenge):
        super().__init__(reply)
        self.reply = reply
        self.challenge = challenge


def decode_challenge(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw": raw.decode("utf-8", "replace")}


def imap(security, mech, host, port, ctx, ir):
    if security == "tls":
        conn = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
    else:
        conn = imaplib.IMAP4(host, port)
        conn.starttls(ssl_context=ctx)
    challenges = []

    def answer(challenge):
        # imaplib sends no SASL-IR: the first continuation is empty and gets
        # the initial response; a later one is the error challenge.
        if not challenges:
            challenges.append(None)
            return base64.b64decode(ir)
        challenges.append(decode_challenge(challenge))
        return ack(mech)

    try:
        conn.authenticate(mech.upper(), answer)
    except imaplib.IMAP4.error as e:
        raise Refused(str(e), challenges[-1] if len(challenges) > 1 else None)
    typ, data = conn.select("INBOX", readonly=True)
    conn.logout()
    return "INBOX has %s messages" % data[0].decode()


def pop3(security, mech, host, port, ctx, ir):
    if security == "tls":
        conn = poplib.POP3_SSL(host, port, context=ctx)
    else:
        conn = poplib.POP3(host, port)
        conn.stls(context=ctx)
    # poplib has no AUTH command: send RFC 5034 AUTH with the initial
    # response and answer a "+ challenge" line by hand (a plain _shortcmd
    # would take "+ ..." for success).
    conn._putcmd("AUTH %s %s" % (mech.upper(), ir))
    line, _ = conn._getline()
    challenge = None
    while line == b"+" or line.startswith(b"+ "):
        challenge = decode_challenge(base64.b64decode(line[2:]))
        conn._putcmd(base64.b64encode(ack(mech)).decode())
        line, _ = conn._getline()
    if not line.startswith(b"+OK"):
        raise Refused(line.decode("utf-8", "replace"), challenge)
    count, size = conn.stat()
    conn.quit()
    return "mailbox has %d messages" % count


def smtp(security, mech, host, port, ctx, ir, user, rcpt, subject):
    if security == "tls":
        conn = smtplib.SMTP_SSL(host, port, context=ctx)
    else:
        conn = smtplib.SMTP(host, port)
        conn.starttls(context=ctx)
    conn.ehlo()
    challenges = []

    def answer(challenge=None):
        if challenge is None:
            return base64.b64decode(ir).decode()
        challenges.append(decode_challenge(challenge))
        return ack(mech).decode()

    try:
        conn.auth(mech.upper(), answer, initial_response_ok=True)
    except smtplib.SMTPAuthenticationError as e:
        raise Refused("%d %s" % (e.smtp_code, e.smtp_error.decode("utf-8", "replace")), challenges[-1] if challenges else None)
    detail = "authenticated"
    if rcpt:
        msg = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nSent by Python's smtplib.\r\n" % (user, rcpt, subject)
        conn.sendmail(user, [rcpt], msg)
        detail = "sent to " + rcpt
    conn.quit()
    return detail


def main(argv):
    proto, security, mech, host, port, cafile, account = argv[1:8]
    rest = argv[8:]
    ctx = ssl.create_default_context(cafile=cafile)
    ir = sasl_initial_response(account, mech, proto)
    # The SASL user is inside the initial response: user= (XOAUTH2) or
    # a= (OAUTHBEARER); smtplib's sendmail wants it as the sender.
    raw = base64.b64decode(ir).decode()
    user = raw.split("user=", 1)[1].split("\x01", 1)[0] if mech == "xoauth2" else raw.split("a=", 1)[1].split(",", 1)[0]
    try:
        if proto == "imap":
            detail = imap(security, mech, host, int(port), ctx, ir)
        elif proto == "pop3":
            detail = pop3(security, mech, host, int(port), ctx, ir)
        else:
            detail = smtp(security, mech, host, int(port), ctx, ir, user, *(rest or [None, None]))
    except Refused as e:
        print(json.dumps({"ok": False, "reply": e.reply, "challenge": e.challenge}))
        return 1
    print(json.dumps({"ok": True, "detail": detail}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
