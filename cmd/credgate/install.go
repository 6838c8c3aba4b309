package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// installCmd is credgate install PATH: it copies this binary to PATH, for
// an init container of an image without a shell (credgate's own is FROM
// scratch) to put credgate where the application's container can start
// through credgate run (deploy/kubernetes/credgate-run.yaml).
func installCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: credgate install PATH")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("credgate install: %w", err)
	}
	in, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("credgate install: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(args[0]), ".credgate-*")
	if err != nil {
		return fmt.Errorf("credgate install: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("credgate install: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("credgate install: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credgate install: %w", err)
	}
	if err := os.Rename(tmp.Name(), args[0]); err != nil {
		return fmt.Errorf("credgate install: %w", err)
	}
	fmt.Fprintln(stdout, "credgate installed at", args[0])
	return nil
}
