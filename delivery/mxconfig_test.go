package delivery

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/config"
)

// TestMXOptionsFromConfig: the daemon's config reaches the engine: route
// keys become an MXRoute, [mx] and [[tls_policy]] become MXOptions, and
// MTA-STS caches its policies in data_dir.
func TestMXOptionsFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(`data_dir = "/var/lib/mailq"
[[route]]
name = "direct"
domains = ["*"]
mx = true
resolver = "127.0.0.1:5353"
max_mx_tries = 3
destination_connections = 4
rate = "100/min"
[mx]
host_down = "2m"
mta_sts_ca_file = "/etc/mailq/ca.pem"
[[tls_policy]]
domain = ".example.com"
require = "encrypt"
`))
	if err != nil {
		t.Fatal(err)
	}
	o := OptionsFromConfig(cfg, nil, zerolog.Nop())
	r := o.Routes[0]
	want := MXRoute{Resolver: "127.0.0.1:5353", MaxTries: 3, DestinationConnections: 4, Rate: Rate{Count: 100, Per: time.Minute}}
	if r.MX == nil || *r.MX != want {
		t.Fatalf("route MX = %+v, want %+v", r.MX, want)
	}
	if o.MX.DownFor != 2*time.Minute || o.MX.DownMax != time.Hour || o.MX.Timeout != 5*time.Second || o.MX.CacheSize != 10000 {
		t.Errorf("MX options = %+v", o.MX)
	}
	if len(o.MX.TLSPolicies) != 1 || o.MX.TLSPolicies[0] != (TLSPolicy{Domain: ".example.com", Require: "encrypt"}) {
		t.Errorf("TLS policies = %+v", o.MX.TLSPolicies)
	}
	if o.MX.STS == nil || o.MX.STS.CAFile != "/etc/mailq/ca.pem" || o.MX.STS.CacheFile != filepath.Join("/var/lib/mailq", "mta-sts.json") {
		t.Errorf("STS options = %+v", o.MX.STS)
	}
	if p, ok := configuredPolicy(o.MX.TLSPolicies, "a.b.example.com"); !ok || policyFromConfig(p).level != levelEncrypt {
		t.Errorf("a subdomain does not get the .example.com policy")
	}
	if _, ok := configuredPolicy(o.MX.TLSPolicies, "example.com"); ok {
		t.Errorf(".example.com must not cover example.com itself")
	}
}
