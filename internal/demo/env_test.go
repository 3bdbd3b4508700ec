package demo

import "testing"

func TestStartEnv(t *testing.T) {
	env, err := StartEnv(EnvOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, name := range []string{UserAccount, AppAccount} {
		a, err := env.Config.Account(name)
		if err != nil {
			t.Fatal(err)
		}
		if a.IMAP == nil || a.POP3 == nil || a.SMTP == nil || a.Graph == "" || a.CAFile != env.CAFile {
			t.Errorf("%s: servers not set: %+v", name, a)
		}
	}
}
