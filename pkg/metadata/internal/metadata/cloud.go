package metadata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Bases of the metadata services, as clouds serve them. Tests point the
// clients at httptest servers instead.
const (
	AWSBase       = "http://169.254.169.254"
	GCEBase       = "http://169.254.169.254" // metadata.google.internal needs DNS; the address does not
	OpenStackBase = "http://169.254.169.254"
)

// ErrNotFound is a 404: the service answers but has no such item.
var ErrNotFound = errors.New("not found")

// Client fetches from a metadata service with short timeouts: on a
// machine of another cloud, each try should cost a second or two.
type Client struct {
	HTTP *http.Client
}

// NewClient returns a client whose requests give up after timeout.
func NewClient(timeout time.Duration) *Client {
	return &Client{HTTP: &http.Client{Timeout: timeout}}
}

func (c *Client) do(ctx context.Context, method, url string, hdr map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s %s: %w", method, url, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return b, nil
}

// optional turns a 404 into "absent".
func optional(b []byte, err error) ([]byte, error) {
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// AWS reads EC2's instance metadata with IMDSv2: a session token from a
// PUT, then GETs carrying it.
func (c *Client) AWS(ctx context.Context, base string) (Data, error) {
	tok, err := c.do(ctx, http.MethodPut, base+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "300"})
	if err != nil {
		return Data{}, fmt.Errorf("aws: %w", err)
	}
	hdr := map[string]string{"X-aws-ec2-metadata-token": strings.TrimSpace(string(tok))}
	get := func(p string) ([]byte, error) { return optional(c.do(ctx, http.MethodGet, base+p, hdr)) }
	d := Data{Source: "aws"}
	host, err := get("/latest/meta-data/local-hostname")
	if err != nil {
		return Data{}, fmt.Errorf("aws: %w", err)
	}
	d.Hostname = strings.TrimSpace(string(host))
	if d.UserData, err = get("/latest/user-data"); err != nil {
		return Data{}, fmt.Errorf("aws: %w", err)
	}
	// public-keys/ lists "0=name" lines; each key is at N/openssh-key.
	list, err := get("/latest/meta-data/public-keys/")
	if err != nil {
		return Data{}, fmt.Errorf("aws: %w", err)
	}
	for _, l := range strings.Split(string(list), "\n") {
		idx, _, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok {
			continue
		}
		k, err := get("/latest/meta-data/public-keys/" + idx + "/openssh-key")
		if err != nil {
			return Data{}, fmt.Errorf("aws: %w", err)
		}
		d.SSHKeys = addKeys(d.SSHKeys, string(k))
	}
	return d, nil
}

// GCE reads Google Compute Engine's metadata server. ssh-keys entries
// are "user:key"; keel has only root, so every user's key is taken.
func (c *Client) GCE(ctx context.Context, base string) (Data, error) {
	hdr := map[string]string{"Metadata-Flavor": "Google"}
	get := func(p string) ([]byte, error) {
		return optional(c.do(ctx, http.MethodGet, base+"/computeMetadata/v1/"+p, hdr))
	}
	host, err := c.do(ctx, http.MethodGet, base+"/computeMetadata/v1/instance/hostname", hdr)
	if err != nil {
		return Data{}, fmt.Errorf("gce: %w", err)
	}
	d := Data{Source: "gce", Hostname: strings.TrimSpace(string(host))}
	// The host name is fully qualified; the machine's name is its first label.
	d.Hostname, _, _ = strings.Cut(d.Hostname, ".")
	if d.UserData, err = get("instance/attributes/user-data"); err != nil {
		return Data{}, fmt.Errorf("gce: %w", err)
	}
	for _, p := range []string{"instance/attributes/ssh-keys", "project/attributes/ssh-keys"} {
		b, err := get(p)
		if err != nil {
			return Data{}, fmt.Errorf("gce: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if _, key, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
				d.SSHKeys = addKeys(d.SSHKeys, key)
			}
		}
	}
	return d, nil
}

// OpenStack reads the OpenStack metadata service's JSON.
func (c *Client) OpenStack(ctx context.Context, base string) (Data, error) {
	meta, err := c.do(ctx, http.MethodGet, base+"/openstack/latest/meta_data.json", nil)
	if err != nil {
		return Data{}, fmt.Errorf("openstack: %w", err)
	}
	d := Data{Source: "openstack"}
	if err := ParseOpenStackMeta(meta, &d); err != nil {
		return Data{}, fmt.Errorf("openstack: %w", err)
	}
	if d.UserData, err = optional(c.do(ctx, http.MethodGet, base+"/openstack/latest/user_data", nil)); err != nil {
		return Data{}, fmt.Errorf("openstack: %w", err)
	}
	return d, nil
}
