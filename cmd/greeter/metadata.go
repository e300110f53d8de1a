package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"
)

// headerFlag collects repeated --header k=v flags into request metadata.
// Values of binary keys (ending in -bin) are given in base64, as grpcurl
// takes them, and sent as raw bytes.
type headerFlag struct{ md metadata.MD }

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	if strings.HasSuffix(strings.ToLower(k), "-bin") {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return fmt.Errorf("binary header %s: value must be base64: %v", k, err)
		}
		v = string(b)
	}
	if h.md == nil {
		h.md = metadata.MD{}
	}
	h.md.Append(k, v)
	return nil
}

// printMetadata writes md to w, one "< kind key: value" line each, sorted,
// with binary values in base64.
func printMetadata(w io.Writer, kind string, md metadata.MD) {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range md[k] {
			if text, ok := loadReportText(k, v); ok {
				v = text
			} else if strings.HasSuffix(k, "-bin") {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			fmt.Fprintf(w, "< %s %s: %s\n", kind, k, v)
		}
	}
}
