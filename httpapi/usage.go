package httpapi

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// versionReaders counts the readers whose latest read was of a version.
type versionReaders struct {
	Version int `json:"version"`
	Readers int `json:"readers"`
}

// credentialUsage answers a credential's ledger: who read its values,
// when, how often and which version last (GET
// /api/v1/credentials/{id}/usage, policy.UsageRead on its integration).
// ?since= (an RFC 3339 time, or a span such as 7d) keeps the readers who
// read since then and the hours from then. While a rotation keeps the
// previous version servable, migration says who has moved off it and who
// has not (credgate.Migration).
func (h *handlers) credentialUsage(c *gin.Context) {
	id, err := credentialID(c)
	if err != nil {
		fail(c, err)
		return
	}
	var since time.Time
	if v := c.Query("since"); v != "" {
		if since, err = time.Parse(time.RFC3339, v); err != nil {
			d, werr := credgate.ParseWithin(v)
			if werr != nil {
				fail(c, invalidParam("since must be an RFC 3339 time or a span such as 7d or 12h"))
				return
			}
			since = time.Now().Add(-d)
		}
	}
	ctx := c.Request.Context()
	service, err := h.locate.LocateCredential(ctx, id)
	if err != nil {
		fail(c, err)
		return
	}
	l, err := h.usage.CredentialLedger(ctx, service, id)
	if err != nil {
		fail(c, err)
		return
	}
	desc, err := h.usage.DescribeCredential(ctx, service, id)
	if err != nil {
		fail(c, err)
		return
	}
	var migration *credgate.Migration
	if now := time.Now(); desc.Migrating(now) {
		m := desc.MigrationOf(l, now)
		migration = &m
	}
	if !since.IsZero() {
		*l = l.Since(since)
	}
	byVersion := map[int]int{}
	for _, r := range l.Readers {
		byVersion[r.LastVersion]++
	}
	versions := []versionReaders{}
	for _, v := range slices.Backward(slices.Sorted(maps.Keys(byVersion))) {
		versions = append(versions, versionReaders{Version: v, Readers: byVersion[v]})
	}
	readers := l.Readers
	if readers == nil {
		readers = []credgate.LedgerReader{}
	}
	hours := l.Hours
	if hours == nil {
		hours = []credgate.HourReads{}
	}
	out := gin.H{
		"credentialId": id, "integrationId": service, "version": desc.Version, "readers": readers, "versions": versions, "hours": hours, "droppedReaders": l.Dropped,
	}
	if migration != nil {
		out["migration"] = migration
	}
	respond(c, http.StatusOK, fmt.Sprintf("%d readers of credential %s", len(readers), id), out)
}
