#include "union/inode.h"

#include <fcntl.h>
#include <unistd.h>

namespace overtier {

int CachedFdFlags(mode_t type) {
  return S_ISDIR(type) ? (O_RDONLY | O_DIRECTORY | O_NOFOLLOW) : (O_PATH | O_NOFOLLOW);
}

NodeTable::NodeTable(const LayerSet* layers, long fd_budget)
    : layers_(layers), fd_budget_(fd_budget) {}

NodeTable::~NodeTable() {
  for (auto& [key, node] : map_)
    if (node != root_) delete node;
  delete root_;
}

void NodeTable::SetRoot(std::unique_ptr<Node> root) {
  root_ = root.release();
  root_->nlookup = 1;
  std::lock_guard<std::mutex> g(map_mu_);
  map_[root_->key] = root_;
}

static bool SameObject(const Node& a, const Node& b) {
  if (a.type != b.type) return false;
  auto same = [](const RealRef& x, const RealRef& y) {
    if (x.layer != y.layer) return false;
    // Without handles (lower objects not yet evicted, or a file system
    // without them) the key, an inode number, decides.
    return x.handle.empty() || y.handle.empty() || x.handle == y.handle;
  };
  if (a.upper.valid() && b.upper.valid()) return same(a.upper, b.upper);
  // One has no upper object: the same object only if a is a copy-up of b's
  // lower one. That is a lookup made before the copy-up (b) meeting the
  // node the copy-up went to (a): b is merely stale. (The reverse cannot
  // be: a copy-up moves the name into the upper layer before it sets the
  // node's upper object, both under the node's lock, which SameObject's
  // callers hold.)
  if (b.upper.valid()) return false;
  if (a.is_dir()) {
    if (a.lower_dirs.empty() || b.lower_dirs.empty()) return false;
    return same(a.lower_dirs[0], b.lower_dirs[0]);
  }
  return a.lower.valid() && b.lower.valid() && same(a.lower, b.lower);
}

Node* NodeTable::Intern(std::unique_ptr<Node> fresh, Node* parent, const std::string& name) {
  std::unique_lock<std::mutex> g(map_mu_);
  auto it = map_.find(fresh->key);
  if (it != map_.end()) {
    Node* old = it->second;
    bool same;
    {
      std::lock_guard<std::mutex> ng(old->mu);
      same = SameObject(*old, *fresh);
    }
    if (same) {
      {
        // The lookup just opened the lower objects again: where the old
        // node's descriptors were evicted, take the fresh ones instead of
        // letting the stat that follows reopen them by handle (on an image
        // layer, a request to the image file system each). Lower layers
        // never change, so the same layer and key is the same object.
        std::lock_guard<std::mutex> ng(old->mu);
        auto adopt = [this](RealRef& o, RealRef& f) {
          if (!o.fd && f.fd && o.layer == f.layer && o.layer >= layers_->first_lower())
            o.fd = std::move(f.fd);
        };
        adopt(old->lower, fresh->lower);
        adopt(old->lower_meta, fresh->lower_meta);
        if (old->lower_dirs.size() == fresh->lower_dirs.size()) {
          for (size_t i = 0; i < old->lower_dirs.size(); i++)
            adopt(old->lower_dirs[i], fresh->lower_dirs[i]);
        }
      }
      old->nlookup.fetch_add(1);
      if (old != root_ && (old->parent != parent || old->name != name)) {
        ReleaseAliasLocked(old);
        old->parent = parent;
        old->name = name;
        if (parent) parent->child_refs_.fetch_add(1);
      }
      g.unlock();
      TouchLru(old);  // it may hold adopted fds: evictable like any used node
      MaybeEvict();   // the fresh node's fds close with it, the old one's may be cold
      return old;
    }
  }
  g.unlock();
  return Insert(std::move(fresh), parent, name);  // evicts
}

Node* NodeTable::Insert(std::unique_ptr<Node> fresh, Node* parent, const std::string& name) {
  Node* n = fresh.release();
  n->nlookup = 1;
  n->parent = parent;
  n->name = name;
  {
    std::lock_guard<std::mutex> g(map_mu_);
    if (parent) parent->child_refs_.fetch_add(1);
    map_[n->key] = n;  // a stale node under the same key stays alive, unlisted
  }
  // Every new node brings fds: keep the total within the budget here, where
  // no node lock is held (creations add nodes without any lookup). In the
  // LRU at once, or nothing could evict its fds before a first use.
  TouchLru(n);
  MaybeEvict();
  return n;
}

void NodeTable::ReleaseAliasLocked(Node* node) {
  Node* p = node->parent;
  node->parent = nullptr;
  if (p && p->child_refs_.fetch_sub(1) == 1) MaybeDeleteLocked(p);
}

void NodeTable::MaybeDeleteLocked(Node* node) {
  if (node == root_ || node->nlookup.load() != 0 || node->child_refs_.load() != 0) return;
  auto it = map_.find(node->key);
  if (it != map_.end() && it->second == node) map_.erase(it);
  {
    std::lock_guard<std::mutex> lg(lru_mu_);
    if (node->in_lru_) lru_.erase(node->lru_it_);
    node->in_lru_ = false;
  }
  ReleaseAliasLocked(node);
  delete node;
}

void NodeTable::Forget(Node* node, uint64_t n) {
  if (node == root_) return;
  std::lock_guard<std::mutex> g(map_mu_);
  if (node->nlookup.fetch_sub(n) == n) MaybeDeleteLocked(node);
}

void NodeTable::SetAlias(Node* node, Node* parent, const std::string& name) {
  std::lock_guard<std::mutex> g(map_mu_);
  if (node == root_) return;
  if (parent) parent->child_refs_.fetch_add(1);
  ReleaseAliasLocked(node);
  node->parent = parent;
  node->name = name;
}

void NodeTable::Unalias(uint64_t key, Node* parent, const std::string& name) {
  std::lock_guard<std::mutex> g(map_mu_);
  auto it = map_.find(key);
  if (it == map_.end() || it->second == root_) return;
  Node* n = it->second;
  if (n->parent == parent && n->name == name) {
    ReleaseAliasLocked(n);
    n->name.clear();
  }
}

bool NodeTable::GetAlias(Node* node, Node** parent, std::string* name) {
  std::lock_guard<std::mutex> g(map_mu_);
  if (node == root_ || node->parent == nullptr) return false;
  *parent = node->parent;
  *name = node->name;
  return true;
}

void NodeTable::TouchLru(Node* node) {
  std::lock_guard<std::mutex> g(lru_mu_);
  if (node->in_lru_) {
    if (node->lru_it_ != lru_.begin()) lru_.splice(lru_.begin(), lru_, node->lru_it_);
  } else {
    lru_.push_front(node);
    node->lru_it_ = lru_.begin();
    node->in_lru_ = true;
  }
}

void NodeTable::MaybeEvict() {
  if (Fd::live() <= fd_budget_) return;
  // Evict from the cold end. try_lock: a node busy now is not cold, and
  // taking node->mu after lru_mu_ must never wait (callers take the other
  // order).
  std::lock_guard<std::mutex> g(lru_mu_);
  long target = fd_budget_ - fd_budget_ / 8;
  auto it = lru_.end();
  int scanned = 0;
  while (Fd::live() > target && it != lru_.begin() && scanned < 4096) {
    --it;
    ++scanned;
    Node* n = *it;
    if (n == root_ || !n->mu.try_lock()) continue;
    auto drop = [this](RealRef& r) {
      if (!r.fd) return;
      // Lower objects get their handle only now (lookups skip the call:
      // lower layers never change, so the inode number alone names them).
      if (r.handle.empty() && layers_->layer(r.layer).handles &&
          !GetHandle(r.fd->get(), "", &r.handle).ok())
        return;
      if (!r.handle.empty()) r.fd.reset();
    };
    drop(n->upper);
    drop(n->lower);
    drop(n->lower_meta);
    for (auto& d : n->lower_dirs) drop(d);
    n->mu.unlock();
    auto victim = it;
    ++it;
    n->in_lru_ = false;
    lru_.erase(victim);
  }
}

Status NodeTable::FdLocked(Node* node, RealRef* ref, FdPtr* out) {
  if (!ref->valid()) return Status::Errno(ENOENT, "no such real object");
  if (!ref->fd) {
    int fd;
    Status s =
        OpenByHandle(layers_->layer(ref->layer), ref->handle, CachedFdFlags(node->type), &fd);
    if (!s.ok()) return s;
    ref->fd = std::make_shared<const class Fd>(fd);
  }
  *out = ref->fd;
  TouchLru(node);
  return Status::OK();
}

Status NodeTable::Fd(Node* node, RealRef Node::*which, FdPtr* out) {
  Status s;
  {
    std::lock_guard<std::mutex> g(node->mu);
    s = FdLocked(node, &(node->*which), out);
  }
  if (s.ok()) MaybeEvict();
  return s;
}

void NodeTable::SetFdLocked(Node* node, RealRef* ref, int fd) {
  ref->fd = std::make_shared<const class Fd>(fd);
  TouchLru(node);
}

}  // namespace overtier
