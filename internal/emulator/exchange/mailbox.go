package exchange

import (
	"slices"
	"strings"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// mailboxInfo is what the servers need to know about one mailbox (a user's
// or a shared one), from the emulator core's model: the scenario's users
// and [[tenants.shared_mailboxes]], changed through the core's admin API
// (ChangeExchange, UpdateUser, UpdateTenant).
type mailboxInfo struct {
	emulator.MailboxInfo
	Address string // lower-case UPN, the store key
}

func (m mailboxInfo) appFullAccess(clientID string) bool {
	return slices.ContainsFunc(m.FullAccess, func(s string) bool { return strings.EqualFold(s, clientID) })
}

// userFullAccess reports whether the user upn may open this mailbox: its
// owner, or a delegate with FullAccess (Add-MailboxPermission -User).
func (m mailboxInfo) userFullAccess(upn string) bool {
	return strings.EqualFold(upn, m.UPN) ||
		slices.ContainsFunc(m.DelegatesFullAccess, func(s string) bool { return strings.EqualFold(s, upn) })
}

// canSendAs reports whether the user upn may send as this mailbox: its
// owner, or a delegate with SendAs (Add-RecipientPermission).
func (m mailboxInfo) canSendAs(upn string) bool {
	return strings.EqualFold(upn, m.UPN) ||
		slices.ContainsFunc(m.DelegatesSendAs, func(s string) bool { return strings.EqualFold(s, upn) })
}

// protocolEnabled is Set-CASMailbox -ImapEnabled/-PopEnabled (SMTP AUTH has
// its own switch with its own reply).
func (m mailboxInfo) protocolEnabled(p Protocol) bool {
	switch p {
	case IMAP:
		return m.IMAPEnabled
	case POP3:
		return m.POPEnabled
	}
	return true
}

// smtpDisabledBy names which setting switched SMTP AUTH off: the mailbox
// override when it says "disabled" (it wins), else the tenant's.
func (m mailboxInfo) smtpDisabledBy() string {
	if m.SMTPAuthOverride == "disabled" || m.TenantSMTP {
		return "Mailbox"
	}
	return "Tenant"
}

// displayName is the name Graph and MIME headers show.
func (m mailboxInfo) displayName() string {
	if m.DisplayName != "" {
		return m.DisplayName
	}
	return m.UPN
}

// mailbox resolves an address (user or shared mailbox UPN) to a mailbox.
// Users without an Exchange mailbox have none.
func (s *Server) mailbox(addr string) (mailboxInfo, bool) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return mailboxInfo{}, false
	}
	mi, ok := s.em.Mailbox(addr)
	if !ok || !mi.HasMailbox {
		return mailboxInfo{}, false
	}
	return mailboxInfo{MailboxInfo: mi, Address: strings.ToLower(mi.UPN)}, true
}
