// Content digests of OCI blobs ("sha256:<hex>"): an OCI layout names every
// blob after the digest of its bytes (blobs/<algorithm>/<hex>), and a
// manifest names its layers by digest. Import checks them all before it
// stores anything, so a damaged or tampered archive is refused instead of
// imported (xxHash, which the store uses, is no defence against tampering;
// SHA-256 is). The hashing is OpenSSL's (libcrypto, loaded when first
// needed: image/digest_api.h).
#ifndef OVERTIER_IMAGE_BLOB_DIGEST_H_
#define OVERTIER_IMAGE_BLOB_DIGEST_H_

#include <memory>
#include <string>
#include <string_view>

#include "overtier/status.h"

namespace overtier {

// The digest a blob path names: "blobs/sha256/abc..." -> algorithm
// "sha256", hex "abc...". False for any other path (a docker-save layer
// "abc/layer.tar" names no digest).
bool DigestOfBlobPath(std::string_view rel, std::string* algorithm, std::string* hex);

// Hashes bytes with an OCI digest algorithm (sha256, sha384, sha512).
class BlobHasher {
 public:
  // ENOTSUP for an algorithm OCI does not register.
  static Status Create(std::string_view algorithm, std::unique_ptr<BlobHasher>* out);
  ~BlobHasher();
  BlobHasher(const BlobHasher&) = delete;
  BlobHasher& operator=(const BlobHasher&) = delete;

  void Update(std::string_view data);
  // Lowercase hex of the digest; the hasher is spent.
  std::string FinishHex();

 private:
  BlobHasher() = default;
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Compares a finished digest with the one the blob is named by:
// Corruption "WHAT: content digest mismatch (expected sha256:..., got ...)".
Status CheckBlobDigest(const std::string& what, std::string_view algorithm,
                       std::string_view expected_hex, std::string_view got_hex);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_BLOB_DIGEST_H_
