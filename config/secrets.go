package config

import (
	"fmt"

	"mailq/smtpproto"
)

// CheckSecrets reads every secret the routes name (password_file,
// password_env, oauth2.token_file), in this process's environment, and
// returns one error per route that lacks one. Load does not: mailqctl and
// sendmail load the same file without the daemon's environment or
// credentials. `mailq --check-config` fails on these; the daemon logs them
// at start (docs/configuration.md "Secrets").
func (c *Config) CheckSecrets() []error {
	var errs []error
	for i := range c.Routes {
		if err := smtpproto.CheckCredentials(&c.Routes[i].Settings); err != nil {
			errs = append(errs, fmt.Errorf("config: %w", err))
		}
	}
	if c.Queue.Postgres() {
		if _, err := c.Queue.ReadDSN(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
