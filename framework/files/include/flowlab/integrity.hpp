// Integrity you can check: every file flowlab publishes (trial files, the experiment file, checkpoints) gets a
// SHA-256 of its whole content in a file beside it, FILE.sha256, in sha256sum's format ("<64 hex>  <name>\n"), so
// `sha256sum -c FILE.sha256` checks it too.
//
// Why a hash beside the file and not HDF5's Fletcher32 filter: Fletcher32 covers the chunks of chunked datasets
// only (not attributes, where flowlab keeps a trial's status, config and error, nor the metadata), needs every
// dataset chunked (another layout), and does not exist for LibTorch's checkpoints. One hash over every byte covers
// all three kinds of file alike and leaves their content (and so the bit-identity of results) untouched.
//
// The checksum is written after the file is in place: the old checksum is removed first, so a crash in between
// leaves a file without checksum (checked by reading it) and never a good file with a stale checksum.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "flowlab/export.hpp"

namespace flowlab {

/// SHA-256 (FIPS 180-4) of `n` bytes, as 64 lowercase hex digits.
FLOWLAB_API std::string sha256_hex(const void* data, size_t n);

/// SHA-256 of a file's content. Throws flowlab::Error naming the file when it cannot be read.
FLOWLAB_API std::string sha256_file(const std::string& path);

/// Where the checksum of `path` lives: path + ".sha256".
FLOWLAB_API std::string checksum_path(const std::string& path);

/// Puts `tmp` in place as `final_path` (durable_rename) with its checksum: removes final_path's old checksum,
/// renames, then writes the new checksum atomically and durably. Throws flowlab::Error naming the file.
FLOWLAB_API void publish_checksummed(const std::string& tmp, const std::string& final_path);

/// Writes `bytes` as `path` with its checksum, through write_file (files.hpp: checked writes, fsync, rename; a full
/// disk is a WriteError naming the file): removes the old checksum, writes the file, then the new checksum.
FLOWLAB_API void write_checksummed(const std::string& path, const std::string& bytes);

/// Removes `path` and its checksum (a missing one is no error).
FLOWLAB_API void remove_checksummed(const std::string& path);

/// "" when `path` has no checksum or its content matches it; otherwise what is wrong, e.g. "is corrupt: its content
/// does not match its checksum in NAME.sha256".
FLOWLAB_API std::string checksum_problem(const std::string& path);

/// Renames a damaged `path` to `path.corrupt-N` (the first N from 1 that is free), and its checksum along with it
/// (to `path.corrupt-N.sha256`); nothing is deleted. Returns the new name. Throws flowlab::Error when it cannot.
FLOWLAB_API std::string set_aside(const std::string& path);

/// What a look at the bytes of an HDF5 file finds wrong, "" when nothing: "cannot be read: REASON", "is empty
/// (0 bytes)", "is not an HDF5 file (no HDF5 signature)" or "looks truncated: it has N bytes, but its HDF5
/// superblock says the file ends at byte M".
FLOWLAB_API std::string hdf5_byte_problem(const std::string& path);

/// The kinds of file that flowlab verify checks.
enum class FileKind { experiment, trial, checkpoint };

/// Everything that is wrong with one file, "" when nothing: its bytes (hdf5_byte_problem), its checksum, then its
/// content: HDF5 files read in full (every attribute and dataset) and checked for flowlab's attributes (an experiment
/// file: experiment_name and /trials; a trial file: one trial group with a status), checkpoints without a checksum
/// loaded through LibTorch's reader (one that matches its checksum is byte for byte what was saved). Messages start
/// with "is" or "looks" so that "FILE " + message reads as a sentence.
FLOWLAB_API std::string file_problem(const std::string& path, FileKind kind);

/// One problem that flowlab verify found: the file, the trial it belongs to ("" when unknown) and what is wrong.
struct VerifyProblem {
  std::string file, trial, what;
};

/// Checks an experiment file, and the trial files and checkpoints in RESULTS.trials beside it (when that directory
/// exists). `checked` gets the number of files checked.
FLOWLAB_API std::vector<VerifyProblem> verify_results(const std::string& results, size_t* checked = nullptr);

/// An error about reading the HDF5 file `path`, made to name the file and say what it looks like:
/// - not HDF5: "PATH is not an HDF5 file (no HDF5 signature): it is not a flowlab results file";
/// - its bytes or checksum show damage: "PATH PROBLEM; check it with: flowlab verify PATH" (PROBLEM as
///   hdf5_byte_problem or checksum_problem say);
/// - HDF5 failed (MESSAGE starts with "HDF5: ") and the file does not read in full: "PATH looks corrupt: HDF5's
///   error where reading it fails; check it with: flowlab verify PATH";
/// - else (the error is not about the file) `message` unchanged.
FLOWLAB_API std::string explain_file_error(const std::string& path, const std::string& message);

}  // namespace flowlab
