package cache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"
)

// BlobDescriptorCache names the blob descriptor cache a configuration selects:
// storage.cache.blobdescriptor, or its older spelling layerinfo ("redis", "inmemory" or "").
func BlobDescriptorCache(cfg *configuration.Configuration) string {
	cc, ok := cfg.Storage["cache"]
	if !ok {
		return ""
	}
	v, ok := cc["blobdescriptor"]
	if !ok {
		v = cc["layerinfo"]
	}
	s, _ := v.(string)
	return s
}

// NewRedisClient connects to the Redis of the configuration's redis: section the way
// distribution's registry does (registry/handlers/app.go, configureRedis), so the prune
// reaches the same server, database and cluster as the registries it serves.
func NewRedisClient(cfg configuration.Redis) (redis.UniversalClient, error) {
	o := cfg.Options
	if len(o.Addrs) == 0 {
		return nil, errors.New("storage.cache.blobdescriptor is redis, but the redis section names no addrs")
	}
	opts := redis.UniversalOptions{
		Addrs:                 o.Addrs,
		ClientName:            o.ClientName,
		DB:                    o.DB,
		Protocol:              o.Protocol,
		Username:              o.Username,
		Password:              o.Password,
		SentinelUsername:      o.SentinelUsername,
		SentinelPassword:      o.SentinelPassword,
		MaxRetries:            o.MaxRetries,
		MinRetryBackoff:       o.MinRetryBackoff,
		MaxRetryBackoff:       o.MaxRetryBackoff,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
		PoolFIFO:              o.PoolFIFO,
		PoolSize:              o.PoolSize,
		PoolTimeout:           o.PoolTimeout,
		MinIdleConns:          o.MinIdleConns,
		MaxIdleConns:          o.MaxIdleConns,
		MaxActiveConns:        o.MaxActiveConns,
		ConnMaxIdleTime:       o.ConnMaxIdleTime,
		ConnMaxLifetime:       o.ConnMaxLifetime,
		MaxRedirects:          o.MaxRedirects,
		ReadOnly:              o.ReadOnly,
		RouteByLatency:        o.RouteByLatency,
		RouteRandomly:         o.RouteRandomly,
		MasterName:            o.MasterName,
		DisableIdentity:       o.DisableIdentity,
		IdentitySuffix:        o.IdentitySuffix,
		UnstableResp3:         o.UnstableResp3,
	}
	t := cfg.TLS
	if t.Certificate != "" || t.Key != "" || len(t.RootCAs) != 0 {
		tlsConf := &tls.Config{}
		if (t.Certificate == "") != (t.Key == "") {
			return nil, errors.New("redis.tls: certificate and key must be set together")
		}
		if t.Certificate != "" {
			pair, err := tls.LoadX509KeyPair(t.Certificate, t.Key)
			if err != nil {
				return nil, fmt.Errorf("redis.tls: loading the client certificate: %w", err)
			}
			tlsConf.Certificates = []tls.Certificate{pair}
		}
		if len(t.RootCAs) != 0 {
			pool := x509.NewCertPool()
			for _, ca := range t.RootCAs {
				pem, err := os.ReadFile(ca)
				if err != nil {
					return nil, fmt.Errorf("redis.tls.rootcas: %w", err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("redis.tls.rootcas: %s holds no PEM certificate", ca)
				}
			}
			tlsConf.RootCAs = pool
		}
		opts.TLSConfig = tlsConf
	}
	return redis.NewUniversalClient(&opts), nil
}

// The keys of distribution's Redis blob descriptor cache (registry/storage/cache/redis).
func blobKey(dgst digest.Digest) string { return "blobs::" + dgst.String() }

func repositorySetKey(repo string) string { return "repository::" + repo + "::blobs" }

func repositoryBlobKey(repo string, dgst digest.Digest) string {
	return "repository::" + repo + "::blobs::" + dgst.String()
}

// RedisInvalidator removes from distribution's Redis blob descriptor cache the entries that
// describe deleted storage objects. Each method returns how many entries it removed (keys
// deleted plus set members removed), and its Count twin how many it would remove. Commands go
// one key each through a pipeline, which Redis Cluster accepts across slots.
type RedisInvalidator struct {
	Client redis.UniversalClient
}

// Blob forgets a deleted blob: blobs::<digest>.
func (r *RedisInvalidator) Blob(ctx context.Context, dgst digest.Digest) (int, error) {
	n, err := r.Client.Del(ctx, blobKey(dgst)).Result()
	if err != nil {
		return 0, fmt.Errorf("redis DEL %s: %w", blobKey(dgst), err)
	}
	return int(n), nil
}

// CountBlob says whether Blob would remove anything.
func (r *RedisInvalidator) CountBlob(ctx context.Context, dgst digest.Digest) (int, error) {
	n, err := r.Client.Exists(ctx, blobKey(dgst)).Result()
	if err != nil {
		return 0, fmt.Errorf("redis EXISTS %s: %w", blobKey(dgst), err)
	}
	return int(n), nil
}

// Link forgets a deleted manifest or layer link of a repository: the digest's membership of
// repository::<repo>::blobs and the hash repository::<repo>::blobs::<digest>.
func (r *RedisInvalidator) Link(ctx context.Context, repo string, dgst digest.Digest) (int, error) {
	pipe := r.Client.Pipeline()
	srem := pipe.SRem(ctx, repositorySetKey(repo), dgst.String())
	del := pipe.Del(ctx, repositoryBlobKey(repo, dgst))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf(
			"redis SREM %s %s, DEL %s: %w",
			repositorySetKey(repo),
			dgst,
			repositoryBlobKey(repo, dgst),
			err,
		)
	}
	return int(srem.Val() + del.Val()), nil
}

// CountLink says how many entries Link would remove.
func (r *RedisInvalidator) CountLink(ctx context.Context, repo string, dgst digest.Digest) (int, error) {
	pipe := r.Client.Pipeline()
	member := pipe.SIsMember(ctx, repositorySetKey(repo), dgst.String())
	exists := pipe.Exists(ctx, repositoryBlobKey(repo, dgst))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf(
			"redis SISMEMBER %s, EXISTS %s: %w",
			repositorySetKey(repo),
			repositoryBlobKey(repo, dgst),
			err,
		)
	}
	n := int(exists.Val())
	if member.Val() {
		n++
	}
	return n, nil
}

// Repository forgets a deleted repository: its set repository::<repo>::blobs and the hash
// repository::<repo>::blobs::<digest> of every digest in it. The set and its hashes are what
// distribution writes together; a nested repository (<repo>/x) has keys of its own, untouched.
func (r *RedisInvalidator) Repository(ctx context.Context, repo string) (int, error) {
	keys, err := r.repositoryKeys(ctx, repo)
	if err != nil {
		return 0, err
	}
	n, err := r.forEachKey(
		ctx,
		keys,
		func(pipe redis.Pipeliner, key string) *redis.IntCmd { return pipe.Del(ctx, key) },
	)
	if err != nil {
		return 0, fmt.Errorf("redis DEL of the keys of repository %s: %w", repo, err)
	}
	return n, nil
}

// CountRepository says how many entries Repository would remove.
func (r *RedisInvalidator) CountRepository(ctx context.Context, repo string) (int, error) {
	keys, err := r.repositoryKeys(ctx, repo)
	if err != nil {
		return 0, err
	}
	n, err := r.forEachKey(
		ctx,
		keys,
		func(pipe redis.Pipeliner, key string) *redis.IntCmd { return pipe.Exists(ctx, key) },
	)
	if err != nil {
		return 0, fmt.Errorf("redis EXISTS of the keys of repository %s: %w", repo, err)
	}
	return n, nil
}

// repositoryKeys lists the set of a repository and the hashes of its members; the set last,
// so that a run stopped half way leaves it to name the hashes still to delete.
func (r *RedisInvalidator) repositoryKeys(ctx context.Context, repo string) ([]string, error) {
	members, err := r.Client.SMembers(ctx, repositorySetKey(repo)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis SMEMBERS %s: %w", repositorySetKey(repo), err)
	}
	keys := make([]string, 0, len(members)+1)
	for _, m := range members {
		// Only what distribution can have written; anything else is not ours to delete.
		if dgst, err := digest.Parse(m); err == nil && !strings.Contains(m, "::") {
			keys = append(keys, repositoryBlobKey(repo, dgst))
		}
	}
	return append(keys, repositorySetKey(repo)), nil
}

// pipelineBatch bounds the commands sent in one pipeline.
const pipelineBatch = 500

// forEachKey runs one command a key, in pipelines of pipelineBatch, and sums the replies.
func (r *RedisInvalidator) forEachKey(
	ctx context.Context,
	keys []string,
	cmd func(redis.Pipeliner, string) *redis.IntCmd,
) (int, error) {
	total := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), pipelineBatch)]
		keys = keys[len(batch):]
		pipe := r.Client.Pipeline()
		cmds := make([]*redis.IntCmd, len(batch))
		for i, k := range batch {
			cmds[i] = cmd(pipe, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return total, err
		}
		for _, c := range cmds {
			total += int(c.Val())
		}
	}
	return total, nil
}
