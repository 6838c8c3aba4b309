package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/valyala/fasthttp"

	"github.com/credgate/credgate/vaultstore/devvault"
)

// The floor is what credgate's stack costs before credgate does anything:
// a gin router on net/http's server whose one route GETs one KV path from
// Vault through fasthttp's HostClient (credgate's transport for reads) and
// answers Vault's bytes as they came. No token check, no policy, no
// decoding, no log line, no metrics. Loaded as the other reads, its CPU a
// request is the part of credgate's that the stack and the machine set
// (the servers' and clients' syscalls, loopback TCP, the runtime), and
// credgate's own work is what credgate's reads cost above it.

// floorConfig is what the floor process is started with.
type floorConfig struct {
	Listen string `json:"listen"`
	Vault  string `json:"vault"` // Vault's address, http://host:port
	Token  string `json:"token"`
	Path   string `json:"path"` // the path GET /read reads
	// Server is the HTTP server the floor answers on: "" for net/http
	// with gin (credgate's), "fasthttp" for fasthttp's, to show what a
	// different server would save.
	Server string `json:"server,omitempty"`
}

// startFloor starts this program as the floor in front of vaultAddr,
// reading path with token, and waits until it answers.
func startFloor(dir, vaultAddr, token, path, server string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := devvault.FreePort()
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(floorConfig{Listen: fmt.Sprintf("127.0.0.1:%d", port), Vault: vaultAddr, Token: token, Path: path, Server: server})
	if err != nil {
		return nil, err
	}
	name := "floor" + server
	return launch(self, dir, name, name+".json", string(cfg), port, "/read", nil, floorCommand)
}

// floorCommand is the first argument that makes this program the floor.
const floorCommand = "floor"

// serveFloor runs the floor with the configuration in file until killed.
func serveFloor(file string) error {
	b, err := os.ReadFile(filepath.Clean(file))
	if err != nil {
		return err
	}
	var cfg floorConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	u, err := url.Parse(cfg.Vault)
	if err != nil {
		return err
	}
	vault := &fasthttp.HostClient{Addr: u.Host, MaxConns: 1024, DisableHeaderNamesNormalizing: true, NoDefaultUserAgentHeader: true}
	target := cfg.Vault + cfg.Path
	// read GETs the path from Vault and hands its answer to answer (the
	// body is valid during the call only).
	read := func(answer func(status int, body []byte)) {
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI(target)
		req.Header.Set("X-Vault-Token", cfg.Token)
		if err := vault.DoTimeout(req, res, 5*time.Second); err != nil {
			answer(http.StatusBadGateway, nil)
			return
		}
		answer(res.StatusCode(), res.Body())
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if cfg.Server == "fasthttp" {
		return (&fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
			read(func(status int, body []byte) {
				c.SetStatusCode(status)
				c.SetContentType("application/json")
				c.SetBody(body)
			})
		}}).Serve(ln)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/read", func(c *gin.Context) {
		read(func(status int, body []byte) { c.Data(status, "application/json", body) })
	})
	return (&http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}
