package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// Fetch limits (RFC 8461 §3.3 leaves them to the sender).
const (
	fetchTimeout  = 30 * time.Second
	maxPolicySize = 64 << 10
)

// Fetcher gets policies over HTTPS from https://mta-sts.<domain>/.well-known/mta-sts.txt.
type Fetcher struct {
	client *http.Client
}

// FetcherOptions configures a Fetcher.
type FetcherOptions struct {
	// CAFile adds PEM roots to the system's (test CAs, private PKI).
	CAFile string
	// Lookup resolves the policy host, so that it is found through the
	// same DNS as the MX records.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Port replaces 443 (tests serve policies on an ephemeral port).
	Port int
}

// NewFetcher builds a fetcher with the system roots plus CAFile.
func NewFetcher(opts FetcherOptions) (*Fetcher, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mta-sts: CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mta-sts: CA file %s holds no PEM certificate", opts.CAFile)
		}
	}
	port := opts.Port
	if port == 0 {
		port = 443
	}
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		DisableKeepAlives:   true,
		Proxy:               nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if opts.Lookup == nil {
				return d.DialContext(ctx, network, net.JoinHostPort(host, strconv.Itoa(port)))
			}
			ips, err := opts.Lookup(ctx, host)
			if err != nil {
				return nil, err
			}
			var last error = fmt.Errorf("%s has no address", host)
			for _, ip := range ips {
				c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		},
	}
	return &Fetcher{client: &http.Client{
		Transport: tr,
		Timeout:   fetchTimeout,
		// RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Fetch gets and parses domain's policy. The certificate must be valid
// for mta-sts.<domain> (RFC 8461 §3.3).
func (f *Fetcher) Fetch(ctx context.Context, domain string) (Policy, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Policy{}, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return Policy{}, fmt.Errorf("mta-sts: fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Policy{}, fmt.Errorf("mta-sts: %s answered %s (only 200 is a policy)", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return Policy{}, fmt.Errorf("mta-sts: %s is %q, not text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		return Policy{}, fmt.Errorf("mta-sts: reading %s: %w", url, err)
	}
	if len(body) > maxPolicySize {
		return Policy{}, errors.New("mta-sts: policy larger than 64 KiB")
	}
	return Parse(string(body))
}
