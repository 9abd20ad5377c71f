// tfgen firmware: replay of the embedded test vectors (.tfgv, written by `tfgen reference`).
//
// The file format is described in codegen/vectors.py; VectorFile reads it in place (no copy, no
// alignment assumed, little-endian). ReplayVectors prints, one line each:
//
//   tfgen replay model=<name> platform=<name>          first, always
//   vectors count=<N> inputs=<I> outputs=<O>           once the file is read and checked
//   out <vector> <output> <hex bytes>                   for every vector and output, in order
//   mismatch <vector> <output> bytes=<n> first=<index> expected=<xx> got=<yy>
//                                                       when an output differs from the file's
//   error: <message>                                    when something fails
//   summary result=<pass|mismatch|error> vectors=<done> arena_used=<bytes> arena_size=<bytes>
//       invoke_us_mean=<us> invoke_us_max=<us> mismatched_bytes=<n>     (one line, always last)
//
// The Python side (codegen/replay.py) parses these lines and compares the `out` bytes itself; the
// mismatch lines are only the firmware's own view.
#ifndef TFGEN_REPLAY_H_
#define TFGEN_REPLAY_H_

#include <cstddef>
#include <cstdint>

#include "tfgen_runtime.h"

namespace tfgen {

class VectorFile {
 public:
  static constexpr int kMaxTensors = 16;
  static constexpr int kMaxDims = 6;

  struct Tensor {
    TfLiteType type;
    int num_dims;
    int dims[kMaxDims];
    std::size_t bytes;
    float scale;
    std::int32_t zero_point;
  };

  // Reads the header and the descriptors and checks that the records fill the rest exactly.
  // Prints an `error:` line and returns false for anything malformed.
  bool Parse(const unsigned char* data, std::size_t size);

  // True when the file was written for this model (sha256) and its tensors are the model's.
  bool Matches(Runner& runner) const;

  int num_inputs() const { return num_inputs_; }
  int num_outputs() const { return num_outputs_; }
  std::uint32_t num_vectors() const { return num_vectors_; }
  const Tensor& input(int i) const { return tensors_[i]; }
  const Tensor& output(int i) const { return tensors_[num_inputs_ + i]; }
  // Raw bytes of input ``i`` / expected output ``o`` of vector ``v``.
  const unsigned char* input_data(std::uint32_t v, int i) const;
  const unsigned char* output_data(std::uint32_t v, int o) const;

 private:
  const unsigned char* records_ = nullptr;
  std::size_t record_bytes_ = 0;
  std::size_t offsets_[kMaxTensors] = {};
  unsigned char sha256_[32] = {};
  int num_inputs_ = 0;
  int num_outputs_ = 0;
  std::uint32_t num_vectors_ = 0;
  Tensor tensors_[kMaxTensors] = {};
};

// Replays tfgen_model::VectorData() through ``runner``, calling its Init() first unless it is
// ready. Before every vector: Reset, then copy the inputs in (the memory planner may place other
// tensors over the inputs during Invoke). Returns 0 when every output matched the file, 1 otherwise.
int ReplayVectors(Runner& runner);

}  // namespace tfgen

#endif  // TFGEN_REPLAY_H_
