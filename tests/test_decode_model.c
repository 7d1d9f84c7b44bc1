/* test_decode_model.c - ctr__decode_v1_model, the look for a /v1/score
 * body's "model" before it is decoded (with several models served, the
 * schema to decode with depends on it). It must find the name wherever the
 * member sits, unescaped as the decoder reads it, and stay silent (0) on
 * every body it cannot read up to the member, so that the decoder reports
 * that body's error itself; it must never read past the body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/decode.h"
#include "testutil.h"

/* want NULL: expect 0 (no model found). The body is copied to a buffer of
 * exactly its length, so a read past the end shows under ASan/valgrind. */
static void expect(const char *body, const char *want)
{
    size_t len = strlen(body), nlen = 0;
    char *copy = malloc(len ? len : 1), name[CTR_REQUEST_MODEL_MAX + 1];
    memcpy(copy, body, len);
    memset(name, 0, sizeof name);
    int got = ctr__decode_v1_model(copy, len, name, CTR_REQUEST_MODEL_MAX, &nlen);
    if (!want) {
        CHECKF(got == 0, "%s: found \"%s\", want none", body, name);
    } else {
        CHECKF(got == 1, "%s: not found, want \"%s\"", body, want);
        if (got == 1) {
            CHECK_EQ_SIZE(nlen, strlen(want));
            CHECKF(nlen <= CTR_REQUEST_MODEL_MAX && !memcmp(name, want, nlen), "%s: got \"%.*s\"", body,
                   (int)(nlen < sizeof name ? nlen : sizeof name), name);
        }
    }
    free(copy);
}

int main(void)
{
    expect("{\"model\":\"a\",\"examples\":[{}]}", "a");
    expect("{\"examples\":[{\"I1\":1},{\"C1\":\"model\"}],\"model\":\"beta\"}", "beta");
    expect(" \n{ \"request_id\" : \"r\" ,\t\"context\":{\"model\":\"x\"} , \"model\" : \"c-1.2\" }", "c-1.2");
    expect("{\"mod\\u0065l\":\"esc\"}", "esc");                 /* an escaped key */
    expect("{\"model\":\"a\\u002fb\\\"c\"}", "a/b\"c");           /* an escaped value */
    expect("{\"context\":{\"model\":\"inner\"},\"examples\":[]}", NULL);   /* not top-level */
    expect("{\"examples\":[{\"model\":\"inner\"}]}", NULL);
    expect("{\"models\":\"x\",\"examples\":[]}", NULL);
    expect("{\"model\":null,\"examples\":[]}", NULL);             /* null: the default */
    expect("{\"model\":7}", NULL);                               /* the decoder says wrong_type */
    expect("{\"model\":[\"a\"]}", NULL);
    expect("", NULL);
    expect("[]", NULL);
    expect("{", NULL);
    expect("{\"model\"", NULL);
    expect("{\"model\":", NULL);
    expect("{\"model\":\"unterminated", NULL);
    expect("{\"examples\":[{\"I1\":1}", NULL);                   /* cut before the member */
    expect("{\"examples\":[1,],\"model\":\"a\"}", NULL);          /* broken before it */
    expect("{\"examples\":[]\"model\":\"a\"}", NULL);             /* no comma */
    expect("{\"model\":\"a\"", "a");                             /* broken after it: the decoder's */

    /* A name longer than any model's: its full length, the first bytes. */
    char body[512], longname[200];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", longname);
    size_t nlen = 0;
    char name[CTR_REQUEST_MODEL_MAX + 1];
    CHECK_EQ_INT(ctr__decode_v1_model(body, strlen(body), name, CTR_REQUEST_MODEL_MAX, &nlen), 1);
    CHECK_EQ_SIZE(nlen, sizeof longname - 1);
    CHECK(!memcmp(name, longname, CTR_REQUEST_MODEL_MAX));

    /* Deep nesting before the member is skipped, within the scanner's depth. */
    char deep[400];
    size_t w = (size_t)snprintf(deep, sizeof deep, "{\"context\":");
    for (int i = 0; i < 40; i++)
        deep[w++] = '[';
    for (int i = 0; i < 40; i++)
        deep[w++] = ']';
    snprintf(deep + w, sizeof deep - w, ",\"model\":\"deep\"}");
    expect(deep, "deep");
    return test_main_end();
}
