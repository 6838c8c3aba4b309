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
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/client"
)

// The API commands: credgate services|credentials|webhooks|grants VERB,
// over the Go client, for people and scripts. The server is CREDGATE_ADDR
// (or -addr), the token CREDGATE_TOKEN or CREDGATE_TOKEN_FILE; values are
// printed only with -reveal and read only from standard input, never from
// an argument (so never in the process list).
//
// Exit codes (documented in the README): 0 done; 1 a usage error or
// anything else; 2 not found; 3 refused (401, 403); 4 unavailable (503,
// 429, no answer); 5 the request was refused for its content (400, 409,
// 413, 422).

const apiUsage = `usage: credgate <resource> <verb> [flags] [args]

  services     list | get ID | create ID NAME [TYPE] | delete ID
  credentials  get SERVICE [-credential ID] [-reveal] | list [-service ID] [-expiring 30d]
               | put SERVICE (a JSON object of values on stdin) | rotate CREDENTIAL_ID [-generate]
               | versions CREDENTIAL_ID
  webhooks     list | get ID | create URL EVENT_TYPE... | delete ID
  grants       list | get ID | create -role ROLE -subject S INTEGRATION... | delete ID

flags: -addr URL (default $CREDGATE_ADDR), -output table|json`

// Exit codes of the API commands.
const (
	exitNotFound    = 2
	exitDenied      = 3
	exitUnavailable = 4
	exitRefused     = 5
)

// apiCmd runs one API command.
func apiCmd(ctx context.Context, resource string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, apiUsage)
		return flag.ErrHelp
	}
	verb := args[0]
	fs := flag.NewFlagSet(resource+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", getenv("CREDGATE_ADDR"), "credgate's address (default $CREDGATE_ADDR)")
	output := fs.String("output", "table", "table or json")
	reveal := fs.Bool("reveal", false, "print secret values (credentials get)")
	credID := fs.String("credential", "", "the credential to read (credentials get)")
	service := fs.String("service", "", "only this service's credentials (credentials list)")
	expiring := fs.String("expiring", "", "only credentials expiring within: 30d, 12h (credentials list)")
	generate := fs.Bool("generate", false, "rotate to values Vault generates (credentials rotate)")
	role := fs.String("role", "", "the grant's role (grants create)")
	subject := fs.String("subject", "", "the grant's subject (grants create)")
	group := fs.String("group", "", "the grant's group (grants create)")
	fs.Usage = func() { fmt.Fprintln(stderr, apiUsage) }
	// Flags may come before or after the arguments.
	var a []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		a, rest = append(a, fs.Arg(0)), fs.Args()[1:]
	}
	if *output != "table" && *output != "json" {
		fs.Usage()
		return flag.ErrHelp
	}
	c, err := cliClient(*addr, getenv)
	if err != nil {
		return fmt.Errorf("credgate %s: %w", resource, err)
	}
	p := printer{out: stdout, json: *output == "json"}
	need := func(n int) error {
		if len(a) < n {
			fs.Usage()
			return flag.ErrHelp
		}
		return nil
	}
	var callErr error
	switch resource + " " + verb {
	case "services list":
		list, err := c.ListServices(ctx)
		callErr = err
		if err == nil {
			rows := [][]string{{"ID", "NAME", "TYPE", "STATUS", "VERSION"}}
			for _, s := range list {
				rows = append(rows, []string{s.ID, s.Name, s.Type, s.Status, fmt.Sprint(s.Version)})
			}
			callErr = p.print(list, rows)
		}
	case "services get":
		if err := need(1); err != nil {
			return err
		}
		s, err := c.GetService(ctx, a[0])
		callErr = err
		if err == nil {
			callErr = p.print(s, [][]string{{"ID", "NAME", "TYPE", "STATUS", "VERSION"}, {s.ID, s.Name, s.Type, s.Status, fmt.Sprint(s.Version)}})
		}
	case "services create":
		if err := need(2); err != nil {
			return err
		}
		svc := &client.Service{ID: a[0], Name: a[1]}
		if len(a) > 2 {
			svc.Type = a[2]
		}
		s, err := c.CreateService(ctx, svc, "")
		callErr = err
		if err == nil {
			callErr = p.print(s, [][]string{{"ID", "NAME", "VERSION"}, {s.ID, s.Name, fmt.Sprint(s.Version)}})
		}
	case "services delete":
		if err := need(1); err != nil {
			return err
		}
		callErr = c.DeleteService(ctx, a[0], 0)
	case "credentials get":
		if err := need(1); err != nil {
			return err
		}
		cr, _, err := c.GetCredential(ctx, client.CredentialRead{Integration: a[0], CredentialID: *credID})
		callErr = err
		if err == nil {
			callErr = p.credential(cr, *reveal)
		}
	case "credentials list":
		q := client.Inventory{}
		if *service != "" {
			q["integrationId"] = []string{*service}
		}
		if *expiring != "" {
			q["expiringWithin"] = []string{*expiring}
		}
		var list []*client.Credential
		for cr, err := range c.Credentials(ctx, q) {
			if err != nil {
				callErr = err
				break
			}
			list = append(list, cr)
		}
		if callErr == nil {
			rows := [][]string{{"ID", "SERVICE", "NAME", "AUTH TYPE", "STATUS", "EXPIRES", "VERSION"}}
			for _, cr := range list {
				exp := "-"
				if cr.ExpiresAt != nil {
					exp = cr.ExpiresAt.UTC().Format("2006-01-02T15:04Z")
				}
				rows = append(rows, []string{cr.ID, cr.IntegrationID, cr.CredentialName, cr.AuthType, cr.Status, exp, fmt.Sprint(cr.Version)})
			}
			callErr = p.print(list, rows)
		}
	case "credentials put":
		if err := need(1); err != nil {
			return err
		}
		var values map[string]string
		if err := json.NewDecoder(io.LimitReader(stdin, 1<<20)).Decode(&values); err != nil || len(values) == 0 {
			return errors.New(`credgate credentials put: give the values as a JSON object on standard input: {"api_key": "…"}`)
		}
		sc, err := c.PutServiceCredentials(ctx, a[0], values, nil, 0)
		callErr = err
		if err == nil {
			callErr = p.print(map[string]any{"service_id": sc.ServiceID, "credential_id": sc.CredentialID, "version": sc.Version},
				[][]string{{"SERVICE", "CREDENTIAL", "VERSION"}, {sc.ServiceID, sc.CredentialID, fmt.Sprint(sc.Version)}})
		}
	case "credentials rotate":
		if err := need(1); err != nil {
			return err
		}
		var body map[string]any
		if *generate {
			body = map[string]any{"generate": true}
		}
		cr, _, err := c.RotateCredential(ctx, a[0], body, 0)
		callErr = err
		if err == nil {
			callErr = p.credential(cr, false)
		}
	case "credentials versions":
		if err := need(1); err != nil {
			return err
		}
		vs, err := c.CredentialVersions(ctx, a[0])
		callErr = err
		if err == nil {
			rows := [][]string{{"VERSION", "CREATED", "CHANGE", "BY", "CURRENT"}}
			for _, v := range vs {
				rows = append(rows, []string{fmt.Sprint(v.Version), v.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"), dash(v.Change), dash(v.ChangedBy), fmt.Sprint(v.Current)})
			}
			callErr = p.print(vs, rows)
		}
	case "webhooks list":
		list, err := c.ListWebhooks(ctx)
		callErr = err
		if err == nil {
			rows := [][]string{{"ID", "URL", "EVENTS", "ENABLED"}}
			for _, w := range list {
				rows = append(rows, []string{w.ID, w.URL, strings.Join(w.EventTypes, ","), fmt.Sprint(w.Enabled)})
			}
			callErr = p.print(list, rows)
		}
	case "webhooks get":
		if err := need(1); err != nil {
			return err
		}
		w, err := c.GetWebhook(ctx, a[0])
		callErr = err
		if err == nil {
			callErr = p.print(w, [][]string{{"ID", "URL", "EVENTS", "ENABLED"}, {w.ID, w.URL, strings.Join(w.EventTypes, ","), fmt.Sprint(w.Enabled)}})
		}
	case "webhooks create":
		if err := need(2); err != nil {
			return err
		}
		w, err := c.CreateWebhook(ctx, &credgate.Webhook{URL: a[0], EventTypes: a[1:]})
		callErr = err
		if err == nil {
			// The signing secret is shown this once: the receiver needs it.
			callErr = p.print(w, [][]string{{"ID", "SECRET (shown once)"}, {w.ID, w.Secret}})
		}
	case "webhooks delete":
		if err := need(1); err != nil {
			return err
		}
		callErr = c.DeleteWebhook(ctx, a[0])
	case "grants list":
		list, err := c.ListGrants(ctx)
		callErr = err
		if err == nil {
			rows := [][]string{{"ID", "WHO", "ROLE", "INTEGRATIONS", "SOURCE"}}
			for _, g := range list {
				rows = append(rows, []string{g.ID, dash(g.Subject + g.Group), g.Role, strings.Join(g.Integrations, ","), g.Source})
			}
			callErr = p.print(list, rows)
		}
	case "grants get":
		if err := need(1); err != nil {
			return err
		}
		g, err := c.GetGrant(ctx, a[0])
		callErr = err
		if err == nil {
			callErr = p.print(g, [][]string{{"ID", "WHO", "ROLE", "INTEGRATIONS"}, {g.ID, dash(g.Subject + g.Group), g.Role, strings.Join(g.Integrations, ",")}})
		}
	case "grants create":
		if err := need(1); err != nil {
			return err
		}
		g, err := c.CreateGrant(ctx, &credgate.Grant{Role: *role, Subject: *subject, Group: *group, Integrations: a})
		callErr = err
		if err == nil {
			callErr = p.print(g, [][]string{{"ID", "ROLE", "INTEGRATIONS"}, {g.ID, g.Role, strings.Join(g.Integrations, ",")}})
		}
	case "grants delete":
		if err := need(1); err != nil {
			return err
		}
		callErr = c.DeleteGrant(ctx, a[0])
	default:
		fmt.Fprintln(stderr, apiUsage)
		return flag.ErrHelp
	}
	if callErr == nil {
		return nil
	}
	fmt.Fprintf(stderr, "credgate %s %s: %v\n", resource, verb, callErr)
	return exitError{exitCodeOf(callErr)}
}

// exitCodeOf is the documented exit code of a failed call.
func exitCodeOf(err error) int {
	var e *client.Error
	if !errors.As(err, &e) {
		var ue *url.Error
		if errors.As(err, &ue) {
			return exitUnavailable
		}
		return 1
	}
	switch {
	case e.Status == http.StatusNotFound:
		return exitNotFound
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return exitDenied
	case e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests || e.Status >= 500:
		return exitUnavailable
	case e.Status >= 400:
		return exitRefused
	}
	return 1
}

// printer prints a result as a table or as JSON.
type printer struct {
	out  io.Writer
	json bool
}

func (p printer) print(v any, rows [][]string) error {
	if p.json {
		enc := json.NewEncoder(p.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(p.out, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// credential prints a credential; its values only when reveal.
func (p printer) credential(cr *client.Credential, reveal bool) error {
	values := map[string]string{}
	for k, v := range cr.Values {
		values[k] = "********"
		if reveal {
			values[k] = v
		}
	}
	for k, v := range cr.CustomFields {
		values["customFields."+k] = "********"
		if reveal {
			values["customFields."+k] = v
		}
	}
	if p.json {
		view := map[string]any{"id": cr.ID, "integrationId": cr.IntegrationID, "credentialName": cr.CredentialName, "authType": cr.AuthType,
			"status": cr.Status, "version": cr.Version, "expiresAt": cr.ExpiresAt, "values": values}
		return p.print(view, nil)
	}
	rows := [][]string{{"ID", cr.ID}, {"SERVICE", cr.IntegrationID}, {"NAME", cr.CredentialName}, {"AUTH TYPE", cr.AuthType}, {"STATUS", cr.Status}, {"VERSION", fmt.Sprint(cr.Version)}}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rows = append(rows, []string{k, values[k]})
	}
	return p.print(nil, rows)
}
