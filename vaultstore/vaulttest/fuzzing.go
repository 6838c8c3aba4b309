package vaulttest

import "flag"

// NoVaultNeeded reports whether this test binary runs only what needs no
// Vault: a fuzzing run (make fuzz: -run '^$' -fuzz FuzzX), one of its
// workers, or a listing (-list). A TestMain that starts a Vault asks it
// first, so that fuzzing is not slowed by a Vault per worker. Call it after
// flag.Parse.
func NoVaultNeeded() bool {
	value := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	if value("test.fuzzworker") == "true" || value("test.list") != "" {
		return true
	}
	return value("test.fuzz") != "" && value("test.run") == "^$"
}
