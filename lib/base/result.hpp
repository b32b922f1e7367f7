// The one error type of the wpckpt libraries: errno + the failed operation +
// its context (+ an optional hint that tells the user what to do next).
// Libraries never throw across their boundaries; they return Result<T>.
// Only the CLI turns an Error into "wpckpt: error: ..." and an exit code.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace wpckpt {

struct Error {
  int err = 0;           // errno value, 0 when the failure is not a syscall's
  std::string op;        // what failed, e.g. "open", "UFFDIO_REGISTER", "parse manifest"
  std::string context;   // on what, e.g. a path, a pid, an address range
  std::string hint;      // what the user can do about it (may be empty)

  // "op context: strerror(err)" — the form the CLI prints after "error: ".
  std::string message() const {
    std::string m = op;
    if (!context.empty()) m += " " + context;
    if (err != 0) m += std::string(": ") + std::strerror(err);
    return m;
  }
  Error&& with_hint(std::string h) && {
    hint = std::move(h);
    return std::move(*this);
  }
};

// An error from the current errno. Call it right after the failing call.
inline Error errno_error(std::string op, std::string context = {}) {
  return Error{errno, std::move(op), std::move(context), {}};
}
inline Error make_error(int err, std::string op, std::string context = {}) {
  return Error{err, std::move(op), std::move(context), {}};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}        // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The value, or `fallback` on failure (the error dropped on purpose).
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { return err_; }
  Error&& error() && { return std::move(err_); }

 private:
  Error err_;
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace wpckpt

#define WPCKPT_CONCAT_INNER(a, b) a##b
#define WPCKPT_CONCAT(a, b) WPCKPT_CONCAT_INNER(a, b)

// Propagate an error: WPCKPT_TRY(do_something());
#define WPCKPT_TRY(expr)                                        \
  do {                                                          \
    auto wpckpt_try_result_ = (expr);                           \
    if (!wpckpt_try_result_) return std::move(wpckpt_try_result_).error(); \
  } while (0)

// Propagate an error or bind the value: WPCKPT_TRY_ASSIGN(auto fd, open_it());
#define WPCKPT_TRY_ASSIGN(lhs, expr)                                        \
  auto WPCKPT_CONCAT(wpckpt_try_, __LINE__) = (expr);                       \
  if (!WPCKPT_CONCAT(wpckpt_try_, __LINE__))                                \
    return std::move(WPCKPT_CONCAT(wpckpt_try_, __LINE__)).error();         \
  lhs = std::move(WPCKPT_CONCAT(wpckpt_try_, __LINE__)).value()
