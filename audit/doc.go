// Package audit reads Vault's file audit log and tells, in credgate's words,
// who did what to which credential: one Op per credgate operation (read
// values, read metadata, list, create, update, rotate, delete, mint caller
// token), with the tenant, the actor (the subject and e-mail credgate puts
// into every caller token's metadata), the integration and credential ids
// (from the tenant-prefixed KV paths), the version, the outcome (ok,
// denied, error), the request id (X-Request-Id, an audited header) and the
// client address.
//
// A credgate request makes several Vault calls; they carry the same request
// id and token, so the scan groups them and names the operation from the
// calls (a write of the rotation lock makes a rotation, of the credential
// index a creation). The log is read as a stream: a group is closed once
// the log has moved on past it, so memory does not grow with the file.
package audit
