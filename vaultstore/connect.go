package vaultstore

import (
	"context"
	"errors"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A connect's state is kept at tenants/<t>/connect/<key>, key a hash of
// the state's secret part, until the provider's redirect takes it: written
// and taken as credgate's system principal, and only once (check-and-set).

func (k *session) connectRecord(key string) record[credgate.ConnectState] {
	return jsonRecord[credgate.ConnectState](k, "connect_state", k.path(policy.FolderConnect, key))
}

// SaveConnectState keeps st for tenant under key, which must be new.
// Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) SaveConnectState(ctx context.Context, tenant, key string, st *credgate.ConnectState) error {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return err
	}
	data, err := encode(st)
	if err != nil {
		return err
	}
	_, err = k.write(ctx, "connect_state_write", k.path(policy.FolderConnect, key), data, 0)
	return translate(err, credgate.ENotFound)
}

// TakeConnectState takes tenant's state under key at most once
// (credgate.ConnectState.Take): of redirects racing with one state, one
// gets it. Errors: INVALID_REQUEST (unknown, used, expired),
// BACKEND_UNAVAILABLE.
func (s *Store) TakeConnectState(ctx context.Context, tenant, key string) (*credgate.ConnectState, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var refused error
	var verifier string
	st, _, err := update(ctx, k.connectRecord(key), 0, func(st *credgate.ConnectState) error {
		verifier = st.Verifier
		refused = st.Take(s.opts.Now())
		if refused != nil && st.Used && st.Verifier == "" {
			return errUnchanged
		}
		st.Verifier = "" // spent: the record keeps no secret once taken
		if refused != nil {
			st.RedirectAfter = ""
		}
		return nil
	})
	switch {
	case errors.Is(err, errNotFound):
		return nil, credgate.Errorf(credgate.EInvalidRequest, "this connect link is unknown; start the connect again")
	case err != nil:
		return nil, translate(err, credgate.ENotFound)
	case refused != nil:
		return nil, refused
	}
	st.Verifier = verifier
	return &st, nil
}
