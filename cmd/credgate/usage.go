package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/credgate/credgate"
)

// usageCmd is credgate usage: who read a credential and which version
// (GET /api/v1/credentials/{id}/usage), for people and scripts. The server
// is CREDGATE_ADDR (or -addr), the token CREDGATE_TOKEN or the file
// CREDGATE_TOKEN_FILE names (as Vault's CLI takes VAULT_ADDR and
// VAULT_TOKEN): never an argument, so never in the process list.
func usageCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", getenv("CREDGATE_ADDR"), "credgate's address (default $CREDGATE_ADDR)")
	since := fs.String("since", "", "only readers who read since then: an RFC 3339 time, or a span such as 7d, 12h, 90m")
	output := fs.String("output", "table", "table or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: credgate usage [-addr URL] [-since 7d] [-output table|json] CREDENTIAL_ID")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*output != "table" && *output != "json") {
		fs.Usage()
		return flag.ErrHelp
	}
	if *addr == "" {
		return errors.New("credgate usage: set CREDGATE_ADDR or -addr")
	}
	tok, err := cliToken(getenv)
	if err != nil {
		return err
	}
	u := strings.TrimRight(*addr, "/") + "/api/v1/credentials/" + url.PathEscape(fs.Arg(0)) + "/usage"
	if *since != "" {
		u += "?since=" + url.QueryEscape(*since)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("credgate usage: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("credgate usage: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("credgate usage: %w", err)
	}
	var env struct {
		Data  json.RawMessage `json:"data"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || (res.StatusCode != http.StatusOK && env.Error == nil) {
		return fmt.Errorf("credgate usage: the server answered %d", res.StatusCode)
	}
	if env.Error != nil {
		return fmt.Errorf("credgate usage: %s: %s", env.Error.Code, env.Error.Message)
	}
	if *output == "json" {
		_, err := fmt.Fprintln(stdout, string(env.Data))
		return err
	}
	var u2 struct {
		CredentialID  string                  `json:"credentialId"`
		IntegrationID string                  `json:"integrationId"`
		Version       int                     `json:"version"`
		Readers       []credgate.LedgerReader `json:"readers"`
		Migration     *credgate.Migration     `json:"migration"`
	}
	if err := json.Unmarshal(env.Data, &u2); err != nil {
		return fmt.Errorf("credgate usage: %w", err)
	}
	fmt.Fprintf(stdout, "credential %s of %s, version %d: %d readers\n", u2.CredentialID, u2.IntegrationID, u2.Version, len(u2.Readers))
	moved := map[string]string{}
	if m := u2.Migration; m != nil {
		for _, r := range m.Moved {
			moved[r.Issuer+" "+r.Subject] = "moved"
		}
		for _, r := range m.Pending {
			moved[r.Issuer+" "+r.Subject] = "pending"
		}
		fmt.Fprintf(stdout, "migrating from version %d until %s (revokeWhenMigrated %v): %d moved, %d pending\n",
			m.PreviousVersion, m.Deadline.UTC().Format(time.RFC3339), m.RevokeWhenMigrated, len(m.Moved), len(m.Pending))
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SUBJECT\tNAME\tEMAIL\tGRANT\tVERSION\tREADS\tLAST READ\tMIGRATION")
	for _, r := range u2.Readers {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Subject, dash(r.Name), dash(r.Email), dash(r.Grant), r.LastVersion, r.Reads,
			r.LastRead.UTC().Format(time.RFC3339), dash(moved[r.Issuer+" "+r.Subject]))
	}
	return w.Flush()
}

// cliToken is the caller's token: CREDGATE_TOKEN, or the file
// CREDGATE_TOKEN_FILE names (read each time: a rotated file is seen).
func cliToken(getenv func(string) string) (string, error) {
	if tok := strings.TrimSpace(getenv("CREDGATE_TOKEN")); tok != "" {
		return tok, nil
	}
	if path := getenv("CREDGATE_TOKEN_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("CREDGATE_TOKEN_FILE: %w", err)
		}
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
		return "", errors.New("CREDGATE_TOKEN_FILE names an empty file")
	}
	return "", errors.New("set CREDGATE_TOKEN or CREDGATE_TOKEN_FILE")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
