// OpenSSL's libcrypto, loaded when an OCI blob's digest is first computed
// (overtier/dl_api.h says why: most starts of `overtier`, a mount's
// among them, never hash a blob).
#ifndef OVERTIER_IMAGE_DIGEST_API_H_
#define OVERTIER_IMAGE_DIGEST_API_H_

#include <openssl/evp.h>

#include "overtier/status.h"

// The libcrypto functions blob_digest.cc calls.
// clang-format off
#define OVERTIER_DIGEST_FUNCTIONS(X) \
  X(EVP_MD_CTX_new) \
  X(EVP_MD_CTX_free) \
  X(EVP_DigestInit_ex) \
  X(EVP_DigestUpdate) \
  X(EVP_DigestFinal_ex) \
  X(EVP_sha256) \
  X(EVP_sha384) \
  X(EVP_sha512)
// clang-format on

namespace overtier {

// One pointer per function, named as the function.
struct DigestApi {
#define OVERTIER_DIGEST_FIELD(f) decltype(&::f) f = nullptr;
  OVERTIER_DIGEST_FUNCTIONS(OVERTIER_DIGEST_FIELD)
#undef OVERTIER_DIGEST_FIELD
};

// Loads libcrypto once (later calls give the same answer): its functions
// in *out, or ENOTSUP saying what is missing.
Status LoadDigestApi(const DigestApi** out);

// What LoadDigestApi does, for any library and every time (for tests).
Status BindDigestApi(const char* soname, DigestApi* out);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_DIGEST_API_H_
