// merge_chain: a standalone image (no parent) with the newest image's kind,
// areas, metadata and extra files, and every page as the chain resolves it.
#include "dump-format/image.hpp"

namespace wpckpt::image {

Result<CommitInfo> merge_chain(const std::filesystem::path& dir, const std::filesystem::path& out,
                               const WriterOptions& options) {
  WPCKPT_TRY_ASSIGN(std::unique_ptr<ImageChain> chain, ImageChain::open(dir));
  const Manifest& m = chain->manifest(0);
  WriterOptions writer_options = options;
  writer_options.progress = nullptr;  // progress comes from reading the chain
  WPCKPT_TRY_ASSIGN(std::unique_ptr<ImageWriter> writer, ImageWriter::create(out, m.kind, std::nullopt, writer_options));
  writer->set_areas(m.areas);
  for (auto it = m.metadata.begin(); it != m.metadata.end(); ++it) writer->set_metadata(it.key(), it.value());
  for (const std::string& name : m.files) {
    WPCKPT_TRY_ASSIGN(std::vector<std::byte> contents, chain->read_file(name));
    WPCKPT_TRY(writer->add_file(name, contents));
  }
  WPCKPT_TRY(chain->for_each_run(
      [&](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) -> Result<void> {
        if (zero_pages > 0) return writer->add_zero_pages(addr, zero_pages);
        return writer->add_pages(addr, data);
      },
      options.progress));
  return writer->commit();
}

}  // namespace wpckpt::image
