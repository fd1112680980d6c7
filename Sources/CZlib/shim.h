// zlib (Debian zlib1g-dev): gzip for rotated audit logs and for reading .gz logs in `audit report`.
#include <zlib.h>
