/*
 * A C program using Lamina's services through include/lamina.h, built for wasm32-wasip1 with
 * clang and wasi-libc:
 *
 *   clang --target=wasm32-wasi -O2 -I ../../include -o c-services.wasm services.c
 *   lamina run c-services.wasm --secret api-token=./token.txt --kv ./kv --attestation
 *
 * It reads a secret (and one it was not given), counts its runs in the sealed key-value store,
 * attests itself over its own data, and sends itself a message.
 */
#include <stdio.h>
#include <string.h>

#include "lamina.h"

#define STR(s) (s), (uint32_t)strlen(s)

static void secrets(void) {
    uint8_t value[256];
    uint32_t len = 0;
    lamina_status s = lamina_secret_get(STR("api-token"), value, sizeof value, &len);
    if (s == LAMINA_OK)
        printf("secret api-token: %u bytes\n", len);
    else
        printf("secret api-token: %s\n", lamina_status_name(s));
    s = lamina_secret_get(STR("not-given"), value, sizeof value, &len);
    printf("secret not-given: %s\n", lamina_status_name(s));
}

static void keyvalue(void) {
    lamina_bucket bucket;
    lamina_status s = lamina_kv_open(STR("c-example"), &bucket);
    if (s != LAMINA_OK) {
        printf("key-value store: %s\n", lamina_status_name(s));
        return;
    }
    uint64_t runs = 0;
    s = lamina_kv_increment(bucket, STR("runs"), 1, &runs);
    if (s != LAMINA_OK) {
        printf("increment: %s\n", lamina_status_name(s));
        return;
    }
    printf("run number %llu\n", (unsigned long long)runs);
    /* Claim a name once: compare-and-swap from "missing". */
    uint32_t swapped = 0;
    s = lamina_kv_compare_and_swap(bucket, STR("first-run"), NULL, 0, 0,
                                   (const uint8_t *)"claimed", 7, &swapped);
    printf("first-run claimed now: %s (%s)\n", swapped ? "yes" : "no", lamina_status_name(s));
    char keys[256];
    uint32_t used = 0, more = 0;
    s = lamina_kv_list(bucket, STR(""), NULL, 0, keys, sizeof keys, &used, &more);
    printf("keys:");
    for (uint32_t i = 0; s == LAMINA_OK && i < used; i += (uint32_t)strlen(keys + i) + 1)
        printf(" %s", keys + i);
    printf("\n");
    lamina_kv_close(bucket);
}

static void attestation(void) {
    const char *user_data = "c-example nonce";
    lamina_status s = lamina_attest((const uint8_t *)user_data, (uint32_t)strlen(user_data));
    if (s != LAMINA_OK) {
        printf("attestation: %s\n", lamina_status_name(s));
        return;
    }
    static uint8_t envelope[64 * 1024];
    uint32_t len = 0;
    s = lamina_attest_envelope(envelope, sizeof envelope, &len);
    printf("attestation: %u-byte envelope (%s)\n", len, lamina_status_name(s));
    char result[8192];
    s = lamina_attest_result(result, sizeof result - 1, &len);
    printf("attestation result: %s\n", s == LAMINA_OK ? "signed EAR" : lamina_status_name(s));
    uint8_t hash[32];
    if (lamina_module_hash(hash) == LAMINA_OK) {
        printf("module hash: ");
        for (int i = 0; i < 32; i++)
            printf("%02x", hash[i]);
        printf("\n");
    }
}

static void messaging(void) {
    lamina_subscription sub;
    lamina_status s = lamina_subscribe(STR("c.*"), &sub);
    if (s != LAMINA_OK) {
        printf("subscribe: %s\n", lamina_status_name(s));
        return;
    }
    s = lamina_publish(STR("c.hello"), (const uint8_t *)"hello, self", 11);
    char topic[64];
    uint8_t data[64];
    uint32_t topic_len = 0, len = 0;
    s = lamina_receive(sub, 1000, topic, sizeof topic, &topic_len, data, sizeof data, &len);
    if (s == LAMINA_OK)
        printf("message on %.*s: %.*s\n", (int)topic_len, topic, (int)len, (const char *)data);
    else
        printf("receive: %s\n", lamina_status_name(s));
    s = lamina_receive(sub, 10, topic, sizeof topic, &topic_len, data, sizeof data, &len);
    printf("then: %s\n", lamina_status_name(s));
    lamina_unsubscribe(sub);
}

int main(void) {
    secrets();
    keyvalue();
    attestation();
    messaging();
    return 0;
}
