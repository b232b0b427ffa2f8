#include "image/digest_api.h"

#include <openssl/opensslv.h>

#include <string>

#include "overtier/dl_api.h"

namespace overtier {

namespace {

// The soname of the libcrypto whose header this is built with.
#if OPENSSL_VERSION_MAJOR == 3
constexpr const char kSoname[] = "libcrypto.so.3";
#else
#error "built for OpenSSL 3 (libcrypto.so.3)"
#endif

}  // namespace

Status BindDigestApi(const char* soname, DigestApi* out) {
  void* lib = nullptr;
  OVT_RETURN_IF_ERROR(DlOpen(soname, "install libssl3 to check OCI blob digests", &lib));
  std::string missing;
#define OVERTIER_DIGEST_BIND(f) DlBind(lib, #f, &out->f, &missing);
  OVERTIER_DIGEST_FUNCTIONS(OVERTIER_DIGEST_BIND)
#undef OVERTIER_DIGEST_BIND
  return DlBound(lib, soname, missing);
}

Status LoadDigestApi(const DigestApi** out) { return DlLoad(kSoname, BindDigestApi, out); }

}  // namespace overtier
