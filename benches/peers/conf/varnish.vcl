vcl 4.1;
# Varnish (MODE=cache only): caches what the origin marks cacheable (max-age=3600).
backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
}
