# mailq: build and install. `make install` needs root (or DESTDIR=…).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
# The daemon goes where nobody runs it by typing its name: systemd starts it.
LIBEXECDIR ?= $(PREFIX)/libexec/mailq
MANDIR     ?= $(PREFIX)/share/man
# Links to mailqctl under the sendmail world's names (empty: no link).
# Programs that hard-code /usr/sbin/sendmail need SENDMAIL=/usr/sbin/sendmail,
# on a machine where no other MTA owns that path.
SENDMAIL   ?= $(PREFIX)/sbin/sendmail
MAILQ      ?= $(BINDIR)/mailq
NEWALIASES ?= $(BINDIR)/newaliases
SYSCONF    ?= /etc
DESTDIR    ?=

.PHONY: build test install clean

# mailqctl is also sendmail, started once per message: built without cgo it
# is a static binary that starts without the dynamic loader and libc (issue
# 13). Its one user lookup, sendmail's default sender, then reads /etc/passwd,
# and for users only NSS knows (LDAP, SSSD) takes $USER or $LOGNAME.
build:
	go build -o bin/mailq ./cmd/mailq
	CGO_ENABLED=0 go build -ldflags "-X main.daemonPath=$(LIBEXECDIR)/mailq" -o bin/mailqctl ./cmd/mailqctl

test:
	go test -race ./...

install: build
	install -D -m 0755 bin/mailq $(DESTDIR)$(LIBEXECDIR)/mailq
	install -D -m 0755 bin/mailqctl $(DESTDIR)$(BINDIR)/mailqctl
	for link in $(SENDMAIL) $(MAILQ) $(NEWALIASES); do \
		install -d $(DESTDIR)$$(dirname $$link) && ln -sf $(BINDIR)/mailqctl $(DESTDIR)$$link || exit 1; \
	done
	install -D -m 0644 man/mailq.8 $(DESTDIR)$(MANDIR)/man8/mailq.8
	install -D -m 0644 man/mailqctl.1 $(DESTDIR)$(MANDIR)/man1/mailqctl.1
	install -D -m 0644 man/mailq.toml.5 $(DESTDIR)$(MANDIR)/man5/mailq.toml.5
	install -D -m 0644 systemd/sysusers.d/mailq.conf $(DESTDIR)$(SYSCONF)/sysusers.d/mailq.conf
	install -D -m 0644 systemd/tmpfiles.d/mailq.conf $(DESTDIR)$(SYSCONF)/tmpfiles.d/mailq.conf
	install -d $(DESTDIR)$(SYSCONF)/systemd/system
	sed 's#/usr/local/libexec/mailq/mailq#$(LIBEXECDIR)/mailq#' systemd/mailq.service >$(DESTDIR)$(SYSCONF)/systemd/system/mailq.service
	chmod 0644 $(DESTDIR)$(SYSCONF)/systemd/system/mailq.service
	install -d -m 0755 $(DESTDIR)$(SYSCONF)/mailq
	install -m 0644 config.example.toml $(DESTDIR)$(SYSCONF)/mailq/mailq.toml.example
	test -e $(DESTDIR)$(SYSCONF)/mailq/mailq.toml || install -m 0640 systemd/mailq.toml $(DESTDIR)$(SYSCONF)/mailq/mailq.toml
	test -e $(DESTDIR)$(SYSCONF)/mailq/client.toml || install -m 0644 systemd/client.toml $(DESTDIR)$(SYSCONF)/mailq/client.toml
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(SYSCONF)/sysusers.d/mailq.conf && \
		systemd-tmpfiles --create $(SYSCONF)/tmpfiles.d/mailq.conf && \
		chgrp mailq $(SYSCONF)/mailq/mailq.toml && \
		{ systemctl daemon-reload 2>/dev/null || true; } && \
		echo "installed; start with: systemctl enable --now mailq"; \
	fi

clean:
	rm -rf bin
