package exchange

import (
	"slices"
	"strings"
)

// SharedMailbox is an Exchange shared mailbox: no sign-in of its own; users
// with FullAccess open it with their own token and user= its address
// (reference §5.2), users with SendAs may send as it, and apps reach it like
// any mailbox (service principal + FullAccess).
type SharedMailbox struct {
	Address     string `json:"address"`
	DisplayName string `json:"name,omitempty"`
	// FullAccess lists the UPNs of users with FullAccess (Add-MailboxPermission -User).
	// The mailbox lives in the tenant of the first of FullAccess and SendAs,
	// so at least one user must be named.
	FullAccess []string `json:"full_access,omitempty"`
	// SendAs lists the UPNs of users allowed to send as it (Add-RecipientPermission).
	SendAs []string `json:"send_as,omitempty"`
	// FullAccessApps lists client ids whose Exchange service principal has FullAccess.
	FullAccessApps []string `json:"full_access_apps,omitempty"`
	// SMTPAuth is the mailbox SMTP AUTH override: "", "enabled" or "disabled".
	SMTPAuth string `json:"smtp_auth,omitempty"`
}

// mailboxInfo is what the servers need to know about one mailbox, from the
// emulator core (user mailboxes) or this package's shared mailboxes.
type mailboxInfo struct {
	Address     string
	DisplayName string
	TenantID    string
	ObjectID    string
	Shared      bool
	SMTPAuth    bool // effective
	TenantSMTP  bool
	apps        []string
	users       []string // FullAccess users (shared mailboxes)
	sendAs      []string
}

func (m mailboxInfo) appFullAccess(clientID string) bool {
	return slices.ContainsFunc(m.apps, func(s string) bool { return strings.EqualFold(s, clientID) })
}

func (m mailboxInfo) userFullAccess(upn string) bool {
	return slices.ContainsFunc(m.users, func(s string) bool { return strings.EqualFold(s, upn) })
}

// canSendAs reports whether identity (a UPN) may send as this mailbox.
func (m mailboxInfo) canSendAs(upn string) bool {
	return strings.EqualFold(upn, m.Address) ||
		slices.ContainsFunc(m.sendAs, func(s string) bool { return strings.EqualFold(s, upn) })
}

// smtpDisabledBy names which setting switched SMTP AUTH off. The core
// reports only the effective value and the tenant's, so "off while the
// tenant is on" must be the mailbox; otherwise the tenant (see
// x-requests.md item 3).
func (m mailboxInfo) smtpDisabledBy() string {
	if m.TenantSMTP {
		return "Mailbox"
	}
	return "Tenant"
}

// mailbox resolves an address (user UPN or shared mailbox) to a mailbox.
// Users without an Exchange mailbox have none.
func (s *Server) mailbox(addr string) (mailboxInfo, bool) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return mailboxInfo{}, false
	}
	if mi, ok := s.em.Mailbox(addr); ok {
		if !mi.HasMailbox {
			return mailboxInfo{}, false
		}
		return mailboxInfo{Address: strings.ToLower(mi.UPN), DisplayName: mi.UPN, TenantID: mi.TenantID,
			ObjectID: mi.ObjectID, SMTPAuth: mi.SMTPAuth, TenantSMTP: mi.TenantSMTP, apps: mi.FullAccess}, true
	}
	s.mu.Lock()
	sm, ok := s.shared[strings.ToLower(addr)]
	s.mu.Unlock()
	if !ok {
		return mailboxInfo{}, false
	}
	anchor, ok := s.em.Mailbox(sharedAnchor(sm))
	if !ok {
		return mailboxInfo{}, false
	}
	return sharedInfo(sm, anchor.TenantID, anchor.TenantSMTP), true
}

// sharedAnchor is the user whose tenant a shared mailbox belongs to.
func sharedAnchor(sm SharedMailbox) string {
	if len(sm.FullAccess) > 0 {
		return sm.FullAccess[0]
	}
	if len(sm.SendAs) > 0 {
		return sm.SendAs[0]
	}
	return ""
}

// sharedInfo builds the mailboxInfo of a shared mailbox in a tenant.
func sharedInfo(sm SharedMailbox, tenantID string, tenantSMTP bool) mailboxInfo {
	eff := tenantSMTP
	switch sm.SMTPAuth {
	case "enabled":
		eff = true
	case "disabled":
		eff = false
	}
	name := sm.DisplayName
	if name == "" {
		name = sm.Address
	}
	return mailboxInfo{Address: strings.ToLower(sm.Address), DisplayName: name, TenantID: tenantID,
		ObjectID: derivedID("shared", strings.ToLower(sm.Address)), Shared: true, SMTPAuth: eff, TenantSMTP: tenantSMTP,
		apps: sm.FullAccessApps, users: sm.FullAccess, sendAs: sm.SendAs}
}
