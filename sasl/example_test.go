package sasl_test

import (
	"fmt"

	"github.com/mailoauth/mailoauth/sasl"
)

func ExampleXOAUTH2InitialResponse() {
	// The string to send after "AUTHENTICATE XOAUTH2" (what `mailoauth
	// token --sasl xoauth2` prints).
	fmt.Println(sasl.XOAUTH2InitialResponse("test@contoso.onmicrosoft.com", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"))
	// Output: dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ==
}

func ExampleChoose() {
	exchange := []string{"PLAIN", "XOAUTH2"}
	gmail := []string{"XOAUTH2", "OAUTHBEARER", "PLAIN"}
	m1, _ := sasl.Choose(exchange, "")
	m2, _ := sasl.Choose(gmail, "")
	m3, _ := sasl.Choose(gmail, "oauthbearer")
	_, err := sasl.Choose(exchange, "OAUTHBEARER")
	fmt.Println(m1, m2, m3)
	fmt.Println(err)
	// Output:
	// XOAUTH2 XOAUTH2 OAUTHBEARER
	// server does not offer OAUTHBEARER (offers PLAIN XOAUTH2): server offers no usable OAuth SASL mechanism
}
