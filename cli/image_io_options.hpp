// How a verb that writes a local image writes its bulk: around the page
// cache (O_DIRECT, the default) or through it (--buffered-io). Why the
// default: dump-format/direct_stream.hpp.
#pragma once

#include <CLI/CLI.hpp>

namespace wpckpt::cli {

// --buffered-io, and --direct-io (the default, accepted for scripts that
// pass it) on `verb`; `buffered_io` is true with --buffered-io.
void add_image_io_options(CLI::App* verb, bool& buffered_io);

}  // namespace wpckpt::cli
