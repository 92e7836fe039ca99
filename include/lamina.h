/*
 * lamina.h: Lamina's host services for C programs built for wasm32-wasip1 (clang and wasi-libc):
 * secrets, a sealed key-value store, self-attestation and messaging, as core-module imports.
 *
 * Components (wasm32-wasip2) reach the same services through the WIT packages in wit/; Rust
 * programs use the lamina-sdk crate. The sealed filesystem needs nothing from this header: open
 * files under a --sealed-dir as usual.
 *
 * Conventions
 *   - Every function returns a lamina_status: LAMINA_OK (0) or why not. A guest's mistake is a
 *     status, never a trap.
 *   - Strings are pointer and length (no NUL needed), UTF-8.
 *   - Outputs are (buf, cap, len_out): the length is always written to *len_out; the bytes are
 *     written if they fit, else LAMINA_BUFFER_TOO_SMALL, so the caller can retry with *len_out
 *     bytes.
 *
 * Build: clang --target=wasm32-wasi -O2 -I include -o app.wasm app.c
 * Run:   lamina run app.wasm --secret NAME=FILE --kv ./kv --attestation
 */
#ifndef LAMINA_H
#define LAMINA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LAMINA_IMPORT(module, name) __attribute__((import_module(module), import_name(name)))

/* What every call returns. The numbers are the ABI (crates/host-abi). */
typedef int32_t lamina_status;
#define LAMINA_OK 0
#define LAMINA_NOT_FOUND 1        /* no such secret, key or store */
#define LAMINA_BUFFER_TOO_SMALL 2 /* *len_out says how much is needed */
#define LAMINA_INVALID_ARGUMENT 3 /* bad UTF-8, name, topic, or too much user data */
#define LAMINA_TOO_LARGE 4        /* a quota or payload limit */
#define LAMINA_DENIED 5
#define LAMINA_UNAVAILABLE 6      /* the service was not given to this run (see lamina run --help) */
#define LAMINA_TIMEOUT 7          /* nothing arrived in time */
#define LAMINA_BAD_HANDLE 8
#define LAMINA_FAULT 9            /* a pointer outside the module's memory */
#define LAMINA_IO 10              /* storage failed (integrity, I/O); the host log says which */

/* A short name for a status, for messages. */
static inline const char *lamina_status_name(lamina_status s) {
    switch (s) {
    case LAMINA_OK: return "ok";
    case LAMINA_NOT_FOUND: return "not found";
    case LAMINA_BUFFER_TOO_SMALL: return "buffer too small";
    case LAMINA_INVALID_ARGUMENT: return "invalid argument";
    case LAMINA_TOO_LARGE: return "too large";
    case LAMINA_DENIED: return "denied";
    case LAMINA_UNAVAILABLE: return "unavailable";
    case LAMINA_TIMEOUT: return "timeout";
    case LAMINA_BAD_HANDLE: return "bad handle";
    case LAMINA_FAULT: return "fault";
    case LAMINA_IO: return "I/O error";
    default: return "unknown status";
    }
}

/* ---- Secrets (lamina run --secret NAME=FILE) ---------------------------------------------- */

/* The secret NAME's bytes. LAMINA_NOT_FOUND when it was not given. */
LAMINA_IMPORT("lamina:secrets", "get")
lamina_status lamina_secret_get(const char *name, uint32_t name_len, uint8_t *buf, uint32_t cap,
                                uint32_t *len_out);

/* Every secret name, each followed by a NUL byte. */
LAMINA_IMPORT("lamina:secrets", "names")
lamina_status lamina_secret_names(char *buf, uint32_t cap, uint32_t *len_out);

/* ---- Sealed key-value store (lamina run --kv DIR) ----------------------------------------- */

typedef uint32_t lamina_bucket;

/* Opens (creating if needed) a bucket; "" is the bucket "default". */
LAMINA_IMPORT("lamina:keyvalue", "open")
lamina_status lamina_kv_open(const char *id, uint32_t id_len, lamina_bucket *bucket_out);

LAMINA_IMPORT("lamina:keyvalue", "close")
lamina_status lamina_kv_close(lamina_bucket bucket);

/* A key's value; LAMINA_NOT_FOUND when missing. */
LAMINA_IMPORT("lamina:keyvalue", "get")
lamina_status lamina_kv_get(lamina_bucket bucket, const char *key, uint32_t key_len, uint8_t *buf,
                            uint32_t cap, uint32_t *len_out);

/* Sets a key, durably (one sealed commit). */
LAMINA_IMPORT("lamina:keyvalue", "set")
lamina_status lamina_kv_set(lamina_bucket bucket, const char *key, uint32_t key_len,
                            const uint8_t *value, uint32_t value_len);

/* Removes a key; a missing key is not an error. */
LAMINA_IMPORT("lamina:keyvalue", "delete")
lamina_status lamina_kv_delete(lamina_bucket bucket, const char *key, uint32_t key_len);

/* *exists_out is 1 when the key has a value. */
LAMINA_IMPORT("lamina:keyvalue", "exists")
lamina_status lamina_kv_exists(lamina_bucket bucket, const char *key, uint32_t key_len,
                               uint32_t *exists_out);

/* Keys starting with PREFIX that sort after AFTER (after_len 0: from the start), each followed
 * by a NUL byte, as many whole keys as fit in BUF; *more_out is 1 when more follow: call again
 * with the last key as AFTER. */
LAMINA_IMPORT("lamina:keyvalue", "list")
lamina_status lamina_kv_list(lamina_bucket bucket, const char *prefix, uint32_t prefix_len,
                             const char *after, uint32_t after_len, char *buf, uint32_t cap,
                             uint32_t *len_out, uint32_t *more_out);

/* Sets KEY to VALUE only if its value is EXPECTED (has_expected 0: only if it is missing);
 * *swapped_out says whether it did. Atomic and durable. */
LAMINA_IMPORT("lamina:keyvalue", "compare_and_swap")
lamina_status lamina_kv_compare_and_swap(lamina_bucket bucket, const char *key, uint32_t key_len,
                                         const uint8_t *expected, uint32_t expected_len,
                                         uint32_t has_expected, const uint8_t *value,
                                         uint32_t value_len, uint32_t *swapped_out);

/* Adds DELTA (>= 0) to a decimal counter (0 when missing); the sum goes to *value_out. */
LAMINA_IMPORT("lamina:keyvalue", "increment")
lamina_status lamina_kv_increment(lamina_bucket bucket, const char *key, uint32_t key_len,
                                  int64_t delta, uint64_t *value_out);

/* ---- Self-attestation (lamina run --attestation) ------------------------------------------ */

/* Evidence over this workload's claims and up to 64 bytes of USER_DATA (the claims' nonce,
 * zero-padded to 8 bytes). Kept for the two calls below. */
LAMINA_IMPORT("lamina:attestation", "attest")
lamina_status lamina_attest(const uint8_t *user_data, uint32_t len);

/* The last evidence's envelope (CBOR; `lamina verify` reads it). */
LAMINA_IMPORT("lamina:attestation", "envelope")
lamina_status lamina_attest_envelope(uint8_t *buf, uint32_t cap, uint32_t *len_out);

/* The verifier's signed result (an EAR JWT); LAMINA_NOT_FOUND without --verifier-policy. */
LAMINA_IMPORT("lamina:attestation", "result")
lamina_status lamina_attest_result(char *buf, uint32_t cap, uint32_t *len_out);

/* This module's hash: 32 bytes. */
LAMINA_IMPORT("lamina:attestation", "module_hash")
lamina_status lamina_module_hash(uint8_t out[32]);

/* ---- Messaging ------------------------------------------------------------------------------ */

typedef uint32_t lamina_subscription;

/* Publishes DATA (at most 1 MiB) on TOPIC (dot-separated tokens). */
LAMINA_IMPORT("lamina:messaging", "publish")
lamina_status lamina_publish(const char *topic, uint32_t topic_len, const uint8_t *data,
                             uint32_t data_len);

/* Subscribes to PATTERN: `*` matches one token, a final `>` one or more. */
LAMINA_IMPORT("lamina:messaging", "subscribe")
lamina_status lamina_subscribe(const char *pattern, uint32_t pattern_len,
                               lamina_subscription *sub_out);

/* The next message, waiting at most TIMEOUT_MS: LAMINA_TIMEOUT when none came. On
 * LAMINA_BUFFER_TOO_SMALL the message stays for the next call (the lengths are written). */
LAMINA_IMPORT("lamina:messaging", "receive")
lamina_status lamina_receive(lamina_subscription sub, uint32_t timeout_ms, char *topic_buf,
                             uint32_t topic_cap, uint32_t *topic_len_out, uint8_t *buf,
                             uint32_t cap, uint32_t *len_out);

LAMINA_IMPORT("lamina:messaging", "unsubscribe")
lamina_status lamina_unsubscribe(lamina_subscription sub);

#ifdef __cplusplus
}
#endif

#endif /* LAMINA_H */
