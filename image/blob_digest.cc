#include "image/blob_digest.h"

#include <cerrno>

#include "image/digest_api.h"

namespace overtier {

bool DigestOfBlobPath(std::string_view rel, std::string* algorithm, std::string* hex) {
  constexpr std::string_view kPrefix = "blobs/";
  if (rel.substr(0, kPrefix.size()) != kPrefix) return false;
  rel.remove_prefix(kPrefix.size());
  size_t slash = rel.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rel.size()) return false;
  std::string_view h = rel.substr(slash + 1);
  if (h.find('/') != std::string_view::npos) return false;
  algorithm->assign(rel.substr(0, slash));
  hex->assign(h);
  return true;
}

struct BlobHasher::Ctx {
  const DigestApi* api = nullptr;
  EVP_MD_CTX* md = nullptr;
  ~Ctx() {
    if (md != nullptr) api->EVP_MD_CTX_free(md);
  }
};

Status BlobHasher::Create(std::string_view algorithm, std::unique_ptr<BlobHasher>* out) {
  const DigestApi* api = nullptr;
  OVT_RETURN_IF_ERROR(LoadDigestApi(&api));
  const EVP_MD* md = nullptr;
  if (algorithm == "sha256") md = api->EVP_sha256();
  if (algorithm == "sha384") md = api->EVP_sha384();
  if (algorithm == "sha512") md = api->EVP_sha512();
  if (md == nullptr)
    return Status::Errno(ENOTSUP, "digest algorithm '" + std::string(algorithm) +
                                      "' is not one OCI registers (sha256, sha384, sha512)");
  std::unique_ptr<BlobHasher> h(new BlobHasher());
  h->ctx_ = std::make_unique<Ctx>();
  h->ctx_->api = api;
  h->ctx_->md = api->EVP_MD_CTX_new();
  if (h->ctx_->md == nullptr || api->EVP_DigestInit_ex(h->ctx_->md, md, nullptr) != 1)
    return Status::Errno(ENOMEM, "cannot start a " + std::string(algorithm) + " digest");
  *out = std::move(h);
  return Status::OK();
}

BlobHasher::~BlobHasher() = default;

void BlobHasher::Update(std::string_view data) {
  ctx_->api->EVP_DigestUpdate(ctx_->md, data.data(), data.size());
}

std::string BlobHasher::FinishHex() {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  ctx_->api->EVP_DigestFinal_ex(ctx_->md, d, &n);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; i++) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 15];
  }
  return out;
}

Status CheckBlobDigest(const std::string& what, std::string_view algorithm,
                       std::string_view expected_hex, std::string_view got_hex) {
  if (expected_hex == got_hex) return Status::OK();
  return Status::Corruption(what + ": content digest mismatch (named " + std::string(algorithm) +
                            ":" + std::string(expected_hex) + ", the bytes are " +
                            std::string(algorithm) + ":" + std::string(got_hex) +
                            "): damaged or altered; refused");
}

}  // namespace overtier
