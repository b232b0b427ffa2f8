#include "store/lazy_volume_set.h"

#include <mutex>
#include <utility>

namespace overtier {

namespace {

class LazyVolumeSet : public VolumeSet {
 public:
  LazyVolumeSet(std::string name, VolumeSetOpener open)
      : name_(std::move(name)), open_(std::move(open)) {}

  const std::string& name() const override { return name_; }

  Status Create(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->Create(vv_id, out);
  }
  Status Open(uint64_t vv_id, std::unique_ptr<VolumeReader>* out) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->Open(vv_id, out);
  }
  Status OpenForAppend(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->OpenForAppend(vv_id, out);
  }
  Status Remove(uint64_t vv_id) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->Remove(vv_id);
  }
  Status List(std::vector<uint64_t>* ids) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->List(ids);
  }
  Status PutObject(std::string_view name, std::string_view data) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->PutObject(name, data);
  }
  Status GetObject(std::string_view name, std::string* data) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->GetObject(name, data);
  }
  Status RemoveObject(std::string_view name) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->RemoveObject(name);
  }
  Status ListObjects(std::string_view prefix, std::vector<std::string>* names) override {
    VolumeSet* s = nullptr;
    OVT_RETURN_IF_ERROR(Get(&s));
    return s->ListObjects(prefix, names);
  }

 private:
  // The set, opened by the first caller; callers meanwhile wait for it.
  // Once open it stays (its readers and writers point into it).
  Status Get(VolumeSet** out) {
    std::lock_guard<std::mutex> l(mu_);
    if (!set_) OVT_RETURN_IF_ERROR(open_(&set_));
    *out = set_.get();
    return Status::OK();
  }

  const std::string name_;
  const VolumeSetOpener open_;
  std::mutex mu_;
  std::unique_ptr<VolumeSet> set_;
};

}  // namespace

std::unique_ptr<VolumeSet> NewLazyVolumeSet(std::string name, VolumeSetOpener open) {
  return std::make_unique<LazyVolumeSet>(std::move(name), std::move(open));
}

}  // namespace overtier
