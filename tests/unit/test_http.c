/* The HTTP server behind every daemon's endpoints: requests parsed by
 * http-parser (method, path, decoded query, body), a body over the limit
 * refused with 413 before it is read, garbage refused with 400, and the
 * query decoding of uriparser. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/http.h"
#include "tests/harness.h"

/* Echoes what it was given: method, path, q, body length. */
static int echo(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **ctype) {
    (void)ctx;
    char q[256];
    int has = me_http_query_get(req->query, "q", q, sizeof q);
    *ctype = "text/plain";
    me_buf_printf(body, "%s %s q=%s body=%zu type=%s", req->method, req->path, has ? q : "-", req->body_len,
                  req->content_type);
    return 200;
}

/* Sends raw bytes, returns the status line's code (or -1). */
static int raw(int port, const char *bytes, size_t n) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    if (write(fd, bytes, n) != (ssize_t)n) { close(fd); return -1; }
    char buf[512] = "";
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    int status = -1;
    if (r > 0) sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

TEST(http_parses_methods_queries_and_bodies) {
    char err[256];
    int port = 0;
    me_http_t *h = me_http_start("127.0.0.1:0", echo, NULL, &port, err, sizeof err);
    ASSERT_TRUE(h != NULL);
    char *body = NULL;
    ASSERT_EQ(me_test_http_get(port, "/api/search?q=grinning+cat%20face&k=3", &body), 200);
    ASSERT_STREQ(body, "GET /api/search q=grinning cat face body=0 type=");
    free(body);
    ASSERT_EQ(me_test_http(port, "POST", "/up?q=%E2%9D%A4", "\x89PNG\0data", 9, "image/png", &body), 200);
    ASSERT_STREQ(body, "POST /up q=\xe2\x9d\xa4 body=9 type=image/png");
    free(body);
    ASSERT_EQ(me_test_http_get(port, "/plain", &body), 200);
    ASSERT_STREQ(body, "GET /plain q=- body=0 type=");
    free(body);
    /* A declared body over the limit: 413 from the headers alone. */
    char big[256];
    int n = snprintf(big, sizeof big, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %u\r\n\r\n", ME_HTTP_MAX_BODY + 1);
    ASSERT_EQ(raw(port, big, (size_t)n), 413);
    /* Not HTTP at all; a bad header line. */
    ASSERT_EQ(raw(port, "\x01\x02 hello\r\n\r\n", 11), 400);
    ASSERT_EQ(raw(port, "GET / HTTP/1.1\r\nno colon here\r\n\r\n", 34), 400);
    me_http_stop(h);
}

TEST(http_query_get_decodes_and_misses) {
    char v[16];
    ASSERT_EQ(me_http_query_get("a=1&b=x+y&c=%41%42", "b", v, sizeof v), 1);
    ASSERT_STREQ(v, "x y");
    ASSERT_EQ(me_http_query_get("a=1&b=x+y&c=%41%42", "c", v, sizeof v), 1);
    ASSERT_STREQ(v, "AB");
    ASSERT_EQ(me_http_query_get("a=1", "z", v, sizeof v), 0);
    ASSERT_EQ(me_http_query_get("", "a", v, sizeof v), 0);
    ASSERT_EQ(me_http_query_get("long=abcdefghijklmnopqrstuvwxyz", "long", v, sizeof v), 1);
    ASSERT_EQ(strlen(v), sizeof v - 1);  /* cut, never overrun */
}

/* Echoes three headers as the handler sees them ("-" when absent). */
static int echo_headers(void *ctx, const me_http_request_t *req, me_buf_t *body, const char **ctype) {
    (void)ctx;
    const char *a = me_http_header(req, "authorization"), *t = me_http_header(req, "X-TIMEOUT-MS"),
               *e = me_http_header(req, "x-empty");
    *ctype = "text/plain";
    me_buf_printf(body, "[%s] [%s] [%s]", a ? a : "-", t ? t : "-", e ? e : "-");
    return 401;
}

TEST(http_headers_reach_the_handler_any_case) {
    char err[256];
    int port = 0;
    me_http_t *h = me_http_start("127.0.0.1:0", echo_headers, NULL, &port, err, sizeof err);
    ASSERT_TRUE(h != NULL);
    char *body = NULL;
    ASSERT_EQ(me_test_http_with(port, "GET", "/", "Authorization: Bearer k\r\nX-Empty:\r\nx-timeout-MS: 250\r\n", NULL, 0,
                                NULL, &body), 401);
    ASSERT_STREQ(body, "[Bearer k] [250] []");
    free(body);
    ASSERT_EQ(me_test_http_get(port, "/", &body), 401);
    ASSERT_STREQ(body, "[-] [-] [-]");
    free(body);
    /* A 401 names the scheme. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char buf[1024] = "";
    ssize_t n, got = 0;
    while ((n = read(fd, buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += n;
    close(fd);
    ASSERT_TRUE(strstr(buf, "\r\nWWW-Authenticate: Bearer\r\n") != NULL);
    me_http_stop(h);
}
