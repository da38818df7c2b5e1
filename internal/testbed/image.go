//go:build linux

package testbed

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// imageLabel carries the digest of the rootfs an image was imported from, so that Up imports
// again only when the content would differ.
const imageLabel = "org.vpcroute.testbed.rootfs"

// imageCmd is the image's default command: serve /www on port 80 in the foreground.
var imageCmd = []string{"httpd", "-f", "-v", "-p", "80", "-h", "/www"}

// HTTPGetCmd is a command for a vrbox container that fetches http://host:port/ and prints the
// response (status line, headers, body). Busybox wget crashes in the image, so it speaks HTTP
// through nc; -w bounds the wait for a peer that never answers.
func HTTPGetCmd(host string, port int) []string {
	req := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' | nc -w 5 %s %d`, host, host, port)
	return []string{"sh", "-c", req}
}

// rootfsFile is one regular file of the image besides busybox.
type rootfsFile struct {
	path, content string
	mode          int64
}

// buildRootfs returns a deterministic tar of a minimal root filesystem: the static busybox,
// a symlink per applet (applets are the lines of `busybox --list-full`, e.g. "usr/bin/nc"),
// the account and name-service files a few applets read, and /www/index.html naming host.
// The same inputs give the same bytes, so their digest identifies the image content.
func buildRootfs(busybox []byte, applets []string, host string) ([]byte, error) {
	epoch := time.Unix(0, 0)
	files := []rootfsFile{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644},
		{"etc/hosts", "127.0.0.1\tlocalhost\n", 0o644},
		{"etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n", 0o644},
		{"www/index.html", "vrbox on " + host + "\n", 0o644},
	}
	dirs := map[string]int64{"bin": 0o755, "dev": 0o755, "etc": 0o755, "proc": 0o755, "root": 0o700,
		"sys": 0o755, "tmp": 0o1777, "var": 0o755, "www": 0o755}
	links := map[string]bool{}
	for _, a := range applets {
		a = strings.TrimPrefix(path.Clean("/"+strings.TrimSpace(a)), "/")
		if a == "" || a == "." || a == "bin/busybox" {
			continue
		}
		links[a] = true
		for d := path.Dir(a); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.ModTime, h.Uname, h.Gname, h.Format = epoch, "root", "root", tar.FormatPAX
		return tw.WriteHeader(h)
	}
	for _, d := range sortedKeys(dirs) {
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: dirs[d]}); err != nil {
			return nil, err
		}
	}
	if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(busybox))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(busybox); err != nil {
		return nil, err
	}
	for _, l := range sortedKeys(links) {
		if err := hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: l, Linkname: "/bin/busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(f.content))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.content)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// busyboxRootfs reads the host's static busybox and builds the rootfs for the named ECS.
func busyboxRootfs(ctx context.Context, busybox, host string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox for the image: %w", err)
	}
	list, err := run(ctx, nil, busybox, "--list-full")
	if err != nil {
		return nil, fmt.Errorf("list busybox applets (is %s the static busybox from busybox-static?): %w", busybox, err)
	}
	return buildRootfs(bin, strings.Split(list, "\n"), host)
}

// ensureImage imports the busybox image into the ECS's engine as ImageName, unless an image of
// that name was imported from the same content.
func (e *ECS) ensureImage(ctx context.Context) error {
	rootfs, err := busyboxRootfs(ctx, e.cfg.Busybox, e.Name)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(rootfs)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	have, err := e.Docker(ctx, "image", "inspect", "--format", `{{index .Config.Labels "`+imageLabel+`"}}`, ImageName)
	if err == nil && have == digest {
		return nil
	}
	cmdJSON := `["` + strings.Join(imageCmd, `","`) + `"]`
	out, err := run(ctx, rootfs, e.cfg.Docker, "--host", e.DockerHost, "import",
		"--change", "LABEL "+imageLabel+"="+digest,
		"--change", "CMD "+cmdJSON,
		"--change", "EXPOSE 80",
		"-", ImageName)
	if err != nil {
		return fmt.Errorf("import %s into the engine of %s: %w", ImageName, e.Name, err)
	}
	e.cfg.Logger.Info("image imported", "ecs", e.Name, "image", ImageName, "id", strings.TrimSpace(out))
	return nil
}
