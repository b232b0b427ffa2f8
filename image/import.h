// Image import: a directory, a tar archive, an OCI image layout or a
// `docker save` archive becomes one image (or, for a multi-layer OCI image,
// one image per layer) in the store, laid out as image/image_format.h says.
//
//   ImportOptions opt;
//   ImportResult res;
//   OVT_RETURN_IF_ERROR(ImportImage(store, "debian", "/tmp/rootfs.tar.zst", opt, &res));
//
// The image appears atomically: its images row(s) are the last, synced,
// commit; a failed or killed import leaves no image (only garbage gc
// reclaims), and running it again works.
//
// The building blocks (ImageBuilder, ImportDirectory, ImportTarLayer) are
// shared with commit (image/commit.h) and the OCI readers (image/oci.h).
#ifndef OVERTIER_IMAGE_IMPORT_H_
#define OVERTIER_IMAGE_IMPORT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "overtier/status.h"
#include "store/catalog_records.h"
#include "store/content_writer.h"
#include "store/store.h"

namespace overtier {

class TarReader;

// What an import has done so far / in total.
struct ImportCounters {
  uint64_t entries = 0;       // nodes created (every type)
  uint64_t files = 0;         // regular files with content
  uint64_t bytes = 0;         // logical bytes of file content
  uint64_t input_bytes = 0;   // bytes of the source consumed (archives), for progress
  uint64_t bytes_stored = 0;  // bytes appended to containers (after dedup; all copies)
  // Bytes of a pipe or standard input copied so far (image/spool.h), all
  // before the import proper starts (the other counters are 0 meanwhile).
  uint64_t spooled_bytes = 0;
};

struct ImportOptions {
  // Import over an existing image name: the new image replaces the old one
  // atomically (the old one's rows become garbage for gc).
  bool replace = false;
  // The image the (bottom) new image stacks on; empty for none.
  std::string parent;
  // Called now and then (at most every file) while importing.
  std::function<void(const ImportCounters&)> progress;
  // Things skipped (sockets...). Default: "overtier: warning: ..." on stderr.
  std::function<void(const std::string&)> warn;
  // Total input size for progress, when known (set by ImportImage).
  uint64_t input_total = 0;
};

struct ImportResult {
  std::vector<std::string> images;  // created, bottom layer first
  std::vector<uint64_t> image_ids;
  ImportCounters counters;
  double seconds = 0;
};

// What kind of source a path is.
enum class SourceKind { kDirectory, kTar, kOciLayout, kDockerSave };
const char* SourceKindName(SourceKind k);
Status DetectSource(const std::string& path, SourceKind* kind);

// The whole import: detects the kind of `source` and creates the image(s).
// "-" is standard input; it and a pipe are copied to a temporary file in
// the store's directory first (image/spool.h).
// EEXIST (naming the image) if a name exists and !options.replace.
Status ImportImage(Store* store, std::string_view name, const std::string& source,
                   const ImportOptions& options, ImportResult* result);

// ---------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------

// One image being built: an in-memory tree of nodes (metadata only; file
// content goes to the store's containers as it arrives) that Commit()
// writes to the catalog. Paths are lists of components, already checked.
class ImageBuilder {
 public:
  // `writer` is shared by the layers of one import (dedup in session).
  ImageBuilder(Store* store, ContentWriter* writer, ImportCounters* counters);
  ~ImageBuilder();

  // Allocates the image id. Must be called first.
  Status Begin();
  uint64_t image_id() const { return image_id_; }

  // The root's metadata (mode type must be a directory).
  Status SetRoot(const NodeRecord& attrs);

  // Creates or replaces the entry at `path` (non-empty) with a new node.
  // Parents are created as needed (mode 0755, owner 0, times of `attrs`)
  // and must be directories: an existing non-directory parent (a symlink
  // included) is refused, naming `what`. An existing entry is replaced, as
  // tar -x does; when both are directories the old one keeps its children
  // and takes the new attributes. `content` is the file content record of a
  // regular file (size > 0). *ino receives the node.
  Status Put(const std::vector<std::string>& path, const NodeRecord& attrs,
             const FileRecord* content, std::string_view what, uint64_t* ino);
  // Adds the name `path` for the existing node `ino` (a hard link).
  Status Link(const std::vector<std::string>& path, uint64_t ino, std::string_view what);
  // The node at `path`, or 0.
  uint64_t Lookup(const std::vector<std::string>& path) const;
  const NodeRecord* node(uint64_t ino) const;
  NodeRecord* mutable_node(uint64_t ino);
  // Marks the directory at `path` opaque (creating it if missing).
  Status MarkOpaque(const std::vector<std::string>& path, int64_t time_ns, std::string_view what);
  // Adds the whiteout `path` (OCI `.wh.NAME`). If the name exists in this
  // layer already, the whiteout only makes a directory there opaque (OCI:
  // a whiteout hides lower layers only).
  Status Whiteout(const std::vector<std::string>& path, const NodeRecord& attrs,
                  std::string_view what);

  // Stores a content record for a node: queued for the next content batch.
  Status AddContent(const FileRecord& rec, Bfid* bfid);
  // Commits the content queued so far if enough has accumulated (flushing
  // the writer first). Called between files.
  Status MaybeCommitContent();

  // Writes the remaining content, then every node and dirent (nlink and
  // sizes computed). Does NOT write the images row: see PublishImages.
  Status WriteTree();

  size_t node_count() const { return nodes_.size(); }

 private:
  struct Node {
    NodeRecord rec;
    uint32_t names = 0;                        // dirents naming it
    std::map<std::string, uint64_t> children;  // directories only
    bool opaque_marker = false;                // `.wh..wh..opq` seen
  };
  Status Walk(const std::vector<std::string>& path, size_t n, bool create, int64_t time_ns,
              std::string_view what, uint64_t* ino);
  Status Unlink(uint64_t dir, const std::string& name);
  void Drop(uint64_t ino);
  Status CommitContent(bool final);
  uint64_t NewNode(const NodeRecord& rec);

  Store* store_;
  ContentWriter* writer_;
  ImportCounters* counters_;
  uint64_t image_id_ = 0;
  uint64_t next_ino_ = 1;
  std::unordered_map<uint64_t, Node> nodes_;
  std::vector<std::pair<Bfid, FileRecord>> pending_files_;
  uint64_t pending_bytes_ = 0;
};

// Publishes images: one synced batch with all their images rows (name ->
// record), and the rows of `finish`->Finish() (sealing the writer's
// containers) when not null. EEXIST if a name exists and !replace.
Status PublishImages(Store* store, ContentWriter* finish,
                     const std::vector<std::pair<std::string, ImageRecord>>& images, bool replace);
// EEXIST naming the first of `names` that exists (unless replace), and
// InvalidArgument for a bad name.
Status CheckNewNames(Store* store, const std::vector<std::string>& names, bool replace);
// The id of image `name` (NotFound naming it).
Status ResolveParent(Store* store, std::string_view name, uint64_t* id);

// commit: the content of a regular file of an upper directory whose bytes
// are not all in it (the migration tier released them into an archive).
// Writes the whole content through w (BeginFile ... EndFile into *out) and
// sets *handled, or leaves *handled false for a file read as it is.
using UpperContentFn = std::function<Status(int fd, uint64_t size, const std::string& what,
                                            ContentWriter* w, FileRecord* out, bool* handled)>;

struct DirectoryImportOptions {
  // commit: drop trusted.overtier.* and user.overtier.* xattrs, and refuse
  // a file whose data the upper directory does not hold: a metadata-only
  // copy (trusted.overlay.metacopy: its data is in a lower layer), and,
  // unless upper_content takes it, a file with an archive mark
  // (user.overtier.archive: released, its bytes in an archive).
  bool drop_overtier_xattrs = false;
  UpperContentFn upper_content;
};

// Walks the directory `path` (openat, O_NOFOLLOW, never following a
// symlink) into the builder: root attributes included.
Status ImportDirectory(ImageBuilder* b, ContentWriter* w, const std::string& path,
                       const DirectoryImportOptions& dopt, const ImportOptions& options,
                       ImportCounters* counters);

// Reads one tar layer into the builder, converting OCI whiteouts.
Status ImportTarLayer(ImageBuilder* b, ContentWriter* w, TarReader* tar,
                      const ImportOptions& options, ImportCounters* counters);

// Splits a tar entry path into checked components: leading '/' and '.'
// components dropped, "a/../b" resolved lexically; '..' above the root,
// a component longer than 255 bytes or a NUL is an error naming the entry.
// The root itself gives an empty list.
Status NormalizeTarPath(std::string_view path, std::vector<std::string>* out);

// Common end of an import or commit: flushes, writes the tree, and returns
// the images row (not yet published).
Status FinishLayer(ImageBuilder* b, uint64_t parent_id, ImageRecord* rec);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_IMPORT_H_
