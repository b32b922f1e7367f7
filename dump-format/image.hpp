// The public face of dump-format: what an image holds, how to write one
// atomically, and how to read a chain of them. Specified byte by byte in
// dump-format/FORMAT.md. This library knows nothing about processes: an image
// is a set of memory areas, pages at addresses, named extra files (the
// process state is one, written by lib/) and free-form JSON metadata.
//
// Chain semantics (the rules every reader applies):
//  - The newest image's `areas` say which addresses exist. An address outside
//    them is "not covered" (an error for read()), whatever the parents hold.
//  - Inside a covered area, a page's bytes come from the newest image of the
//    chain that has an entry for it: stored data, or an explicit zero.
//  - A "fresh range" of an image cuts the chain: a page in it that the image
//    does not store is zero, not inherited (a new or re-created area).
//  - A page that no image of the chain has an entry for is zero.
#pragma once

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dump-format/image_sink.hpp"
#include "lib/base/progress.hpp"
#include "lib/base/result.hpp"

namespace wpckpt::image {

constexpr uint64_t kPageSize = 4096;
// Pages per compressed frame unless WriterOptions::frame_pages says otherwise:
// the random-access cost of one page against the ratio, measured (FORMAT.md).
constexpr uint32_t kDefaultFramePages = 16;
constexpr int kDefaultCompressLevel = 1;

enum class ImageKind { PreDump, Dump };
const char* kind_name(ImageKind kind);  // "pre-dump" | "dump"

// One memory area. `attributes` carries what the writer of the image wants
// to remember about it (backing file identity etc.); dump-format stores it
// untouched.
struct MemoryArea {
  uint64_t start = 0, end = 0;  // page aligned, end exclusive
  std::string prot;             // "rw-p" style, as in /proc/PID/maps
  std::string backing;          // "anon", "file", "shmem", "heap", "stack", "vdso", ...
  std::string path;             // file path or pseudo name, may be empty
  uint64_t file_offset = 0;
  bool contents = true;         // false: the image holds no pages for it (e.g. [vvar])
  nlohmann::json attributes = nlohmann::json::object();
};

struct WriterOptions {
  int compress_level = 1;  // zstd level; negative = zstd "fast" levels
  unsigned threads = 0;    // compression workers; 0 = one per core
  uint32_t frame_pages = 0;  // pages per zstd frame; 0 = kDefaultFramePages (FORMAT.md says why)
  ProgressFn progress;     // optional
  // A local image's bulk around the page cache (O_DIRECT, dump-format/
  // direct_stream.hpp, which says why that is the default): much less CPU,
  // no one's cache evicted; a restore reads the image from the disk.
  bool direct_io = true;
};

struct CommitInfo {
  std::filesystem::path dir;
  uint64_t pages_stored = 0;     // pages whose bytes are in this image
  uint64_t pages_zero = 0;       // explicit zero entries
  uint64_t bytes_raw = 0;        // pages_stored * 4096
  uint64_t bytes_compressed = 0; // page data on disk
  double seconds = 0;            // from create() to the end of commit()
  uint64_t pages_fresh = 0;      // pages of fresh ranges with no entry (zero by the fresh rule)
};

// Writes one image. Pages come in strictly ascending address order. Nothing
// is visible under `dir` until commit() succeeds; destroying an uncommitted
// writer removes everything it wrote. Files are 0600, directories 0700.
class ImageWriter {
 public:
  // Fails if `dir` exists, unless it is an empty directory (CRIU's `-D`
  // convention), which commit() then replaces; the image directory is 0700
  // whatever mode the empty one had. `parent`, if given, must be a readable image; its
  // relative path and digest go into the manifest.
  static Result<std::unique_ptr<ImageWriter>> create(const std::filesystem::path& dir, ImageKind kind,
                                                     const std::optional<std::filesystem::path>& parent,
                                                     const WriterOptions& options);
  // The same into any sink (image_sink.hpp: a page server's connection), the
  // parent already resolved by whoever holds it.
  static Result<std::unique_ptr<ImageWriter>> create(std::unique_ptr<ImageSink> sink, ImageKind kind,
                                                     const std::optional<ParentLink>& parent,
                                                     const WriterOptions& options);
  virtual ~ImageWriter() = default;

  virtual void set_areas(std::vector<MemoryArea> areas) = 0;
  // Free-form metadata stored under manifest["metadata"][key].
  virtual void set_metadata(const std::string& key, nlohmann::json value) = 0;
  // An extra file of the image (e.g. "process.json"); digest kept in the manifest.
  virtual Result<void> add_file(const std::string& name, std::span<const std::byte> contents) = 0;
  // Pages not stored here inside [start, end) are zero, not inherited.
  virtual Result<void> add_fresh_range(uint64_t start, uint64_t end) = 0;
  // `data.size()` is a multiple of 4096; addr page aligned and above every
  // page added before. All-zero pages are detected and stored as zero entries.
  virtual Result<void> add_pages(uint64_t addr, std::span<const std::byte> data) = 0;
  virtual Result<void> add_zero_pages(uint64_t addr, uint64_t count) = 0;
  // One frame of another image with the same frame size, copied as it is
  // (merge: most frames of a chain come out unchanged). `runs` are the pages
  // it covers in address order: its stored pages (raw_pages of them, in the
  // frame's order) and the zero runs between them. Only where a frame starts
  // (stored_pages() a multiple of the frame size); a frame of fewer pages
  // ends the stored pages of the image. The caller checked the bytes
  // (check_frame in frame_codec.hpp).
  struct FrameRun {
    uint64_t addr = 0, pages = 0;
    bool zero = false;
  };
  virtual Result<void> add_compressed_frame(std::span<const FrameRun> runs, std::span<const std::byte> compressed,
                                            uint32_t raw_pages, uint64_t checksum) = 0;
  // Pages stored so far (zero pages not counted).
  virtual uint64_t stored_pages() const = 0;
  // Where the next stored pages will go: room for up to `max_pages` (at
  // least one) in the batch being filled. Pages read straight into it and
  // then handed to add_pages() in order, from its start, are not copied
  // again (a full pre-dump spent 7% of its time in that copy). Valid until
  // the next call that adds pages. Empty after a failure.
  virtual std::span<std::byte> page_room(uint64_t max_pages) = 0;
  // How many pages are coming (a hint, 0 = unknown): the batches are sized
  // by it, so that a small delta populates only the memory it fills.
  virtual void expect_pages(uint64_t pages) = 0;
  // Starts the compression workers and gives them their memory now (zstd
  // workspaces, populated batch buffers: one per worker, or as many as
  // `expected_pages` fill, up to the batches in flight), so that a freeze
  // that follows spends none of it: ~2.5 ms here, fresh memory being slow to
  // touch (1-1.4 ms per MiB of batch). Optional; without it the workers
  // start with the first batch. Called again with more pages (before any
  // page is added), it adds what the larger number needs.
  virtual void warm_up(uint64_t expected_pages = 0) = 0;
  // No more pages: the last partial batch goes to the compression workers
  // now, so that what the caller does before commit() (a dump writes its
  // process state) overlaps its compression. Optional: commit() does it.
  virtual Result<void> pages_done() = 0;
  // fsync files, rename the temporary directory to `dir` (over it if it was
  // an empty directory and still is), fsync the parent.
  // Fails (and writes nothing) if the areas overlap or are unaligned, or if a
  // page entry lies outside every area with contents.
  virtual Result<CommitInfo> commit() = 0;
};

struct Manifest {
  uint32_t format_version = 0;
  ImageKind kind = ImageKind::PreDump;
  std::string created;                   // RFC 3339 UTC
  std::optional<std::string> parent;     // relative path from this image's directory
  std::optional<std::string> parent_digest;
  std::vector<MemoryArea> areas;
  nlohmann::json metadata = nlohmann::json::object();
  std::vector<std::string> files;        // names of extra files
  // What the writer recorded about the image's own pages (manifest "stats").
  struct Stats {
    uint64_t pages_stored = 0, pages_zero = 0, pages_fresh = 0;
    uint64_t bytes_raw = 0, bytes_compressed = 0, frames = 0;
    uint32_t frame_pages = 0;
    int compress_level = 0;
  } stats;
};

// What `wpckpt show` prints about a chain: the newest image's covered pages
// resolved through the chain.
struct ChainSummary {
  uint64_t pages_covered = 0;    // pages of areas with contents
  uint64_t pages_stored = 0;     // stored in the newest image
  uint64_t pages_in_parent = 0;  // stored in an older image of the chain
  uint64_t pages_zero = 0;       // explicit zero, fresh, or no entry anywhere
};

// Where one page's bytes come from.
struct PageSource {
  enum Kind { NotCovered, Zero, Stored } kind = NotCovered;
  size_t image = 0;  // index in ImageChain::dirs() (0 = newest) when Stored
};

// Page data kept elsewhere: the bytes of each image's pages.dat fetched on
// demand (lib/net's page-server client). A chain opened with it reads its
// manifests, indexes and extra files from its directories as usual, and
// every frame through it; each frame's checksum is checked as for a file.
class RemoteData {
 public:
  virtual ~RemoteData() = default;
  // pages.dat bytes [offset, offset + out.size()) of the image at `dir` (the
  // directory as the chain reached it). Thread safe.
  virtual Result<void> read(const std::filesystem::path& dir, uint64_t offset, std::span<std::byte> out) const = 0;
};

struct OpenOptions {
  // Refuse images owned by another user unless set. Either way every file and
  // directory of the chain must belong to one owner and be writable by no
  // one else (dump-format/image_files.hpp).
  bool allow_other_owner = false;
  // Set: the images' directories hold no pages.dat; their page data comes from here.
  std::shared_ptr<const RemoteData> remote_data;
  // Only the newest image's manifest is read and checked (its owner, its
  // canonical form and checksum): what linking a new image to the chain
  // needs, its pages being never read then. The rest of the chain is left to
  // whoever reads it (restore, verify, merge check every file): reading every
  // ancestor for every pre-dump made a pre-dump's fixed cost grow with the
  // chain, 0.8 ms an image here. Such a chain has no page map: ResolvedChain
  // only.
  bool newest_manifest_only = false;
};

// A resolved chain: the image at `dir` and all its parents, every manifest
// and index checked. Page data is read on demand, one frame at a time; only a
// few data files are open at once, whatever the length of the chain.
class ImageChain {
 public:
  static Result<std::unique_ptr<ImageChain>> open(const std::filesystem::path& dir, const OpenOptions& options = {});
  virtual ~ImageChain() = default;

  virtual const std::vector<std::filesystem::path>& dirs() const = 0;  // newest first
  virtual const Manifest& manifest(size_t image = 0) const = 0;
  // The user every file of the chain belongs to (OpenOptions says who may be).
  virtual uid_t owner() const = 0;
  virtual Result<std::vector<std::byte>> read_file(const std::string& name) const = 0;  // newest image's file

  virtual PageSource source(uint64_t page_addr) const = 0;
  // Bytes of [addr, addr + out.size()) as of the newest image; error if any
  // byte is not covered.
  virtual Result<void> read(uint64_t addr, std::span<std::byte> out) const = 0;
  // Every covered area with contents as runs of consecutive pages of one
  // kind: fn(addr, data) for stored bytes, fn(addr, {}) with `zero_pages` > 0
  // for zeros; each covered page exactly once.
  //  - RunOrder::Address: in address order (merge writes an image from it);
  //  - RunOrder::FramesOnce: the zero runs in address order, then the stored
  //    runs frame by frame, image by image, so that each frame of the chain
  //    is read and decompressed once however the images interleave (restore:
  //    a delta's pages scattered over its parent's frames would otherwise
  //    make every parent frame they interrupt be decompressed again).
  enum class RunOrder { Address, FramesOnce };
  using RunFn = std::function<Result<void>(uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages)>;
  virtual Result<void> for_each_run(const RunFn& fn, const ProgressFn& progress = {},
                                    RunOrder order = RunOrder::Address) const = 0;
  // Page counts of the newest image's areas, resolved through the chain (no
  // page data is read).
  virtual ChainSummary summary() const = 0;
};

// `wpckpt verify`: every checksum and digest of the whole chain.
struct VerifyReport {
  size_t images = 0;
  uint64_t frames_checked = 0, bytes_checked = 0;
};
// `newest` limits the data check to that many images from the newest (a page
// server checks what it received; the parents were checked when they came).
// Without `decompress`, frames are checked against their checksums only (a
// page server: the restore decompresses them anyway and fails loudly).
Result<VerifyReport> verify_chain(const std::filesystem::path& dir, const ProgressFn& progress = {},
                                  size_t newest = SIZE_MAX, bool decompress = true);

// `wpckpt merge`: one standalone image with the content of the chain.
Result<CommitInfo> merge_chain(const std::filesystem::path& dir, const std::filesystem::path& out,
                               const WriterOptions& options);

}  // namespace wpckpt::image
