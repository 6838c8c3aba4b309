package httpapi

import (
	"time"

	"github.com/gin-gonic/gin"
)

// envelope is the credentials family's answer shape:
// {"success", "message", "data", "timestamp"}, or with "error" instead of
// "data" when it failed.
type envelope struct {
	Success   bool               `json:"success"`
	Message   string             `json:"message,omitempty"`
	Data      any                `json:"data,omitempty"`
	Error     *envelopeErrorBody `json:"error,omitempty"`
	Timestamp string             `json:"timestamp"`
}

// respond answers a credentials-family success.
func respond(c *gin.Context, status int, message string, data any) {
	c.JSON(status, envelope{Success: true, Message: message, Data: data, Timestamp: timestamp()})
}

// timestamp is the envelope's timestamp: now, RFC 3339 in UTC.
func timestamp() string { return time.Now().UTC().Format(time.RFC3339) }
