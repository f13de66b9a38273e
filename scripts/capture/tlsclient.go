// A Go client as Go services are: net/http's default transport (HTTP/2 attempted,
// crypto/tls defaults), certificate checks off, the name dialled at an address given
// apart so that no resolver is asked. Prints what it negotiated; exit 1 on failure.
//
//	tlsclient ADDR:PORT https://NAME:PORT/
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

var versions = map[uint16]string{
	tls.VersionTLS10: "TLSv1.0", tls.VersionTLS11: "TLSv1.1",
	tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3",
}

func main() {
	addr, url := os.Args[1], os.Args[2]
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	_, _ = io.ReadAll(resp.Body)
	st := resp.TLS
	fmt.Printf("negotiated %s %s\n", versions[st.Version], tls.CipherSuiteName(st.CipherSuite))
}
