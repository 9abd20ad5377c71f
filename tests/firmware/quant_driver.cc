// Test driver for firmware/tfgen_quant.h: converts a binary stream on stdin to one on stdout.
//   quant_driver quantize BITS SCALE ZERO_POINT    float32 in, int8/int16 out
//   quant_driver dequantize BITS SCALE ZERO_POINT  int8/int16 in, float32 out
// SCALE is a C99 hex float (Python's float.hex()), so it arrives bit for bit.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tfgen_quant.h"

namespace {

std::vector<unsigned char> ReadAll() {
  std::vector<unsigned char> data;
  unsigned char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0) {
    data.insert(data.end(), buffer, buffer + n);
  }
  return data;
}

template <typename T>
void Quantize(const std::vector<unsigned char>& in, float scale, std::int32_t zero_point) {
  std::vector<float> values(in.size() / sizeof(float));
  std::memcpy(values.data(), in.data(), values.size() * sizeof(float));
  std::vector<T> out(values.size());
  tfgen::AffineQuantize(values.data(), out.data(), values.size(), scale, zero_point);
  std::fwrite(out.data(), sizeof(T), out.size(), stdout);
}

template <typename T>
void Dequantize(const std::vector<unsigned char>& in, float scale, std::int32_t zero_point) {
  std::vector<T> values(in.size() / sizeof(T));
  std::memcpy(values.data(), in.data(), values.size() * sizeof(T));
  std::vector<float> out(values.size());
  tfgen::Dequantize(values.data(), out.data(), values.size(), scale, zero_point);
  std::fwrite(out.data(), sizeof(float), out.size(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fputs("usage: quant_driver quantize|dequantize 8|16 SCALE ZERO_POINT\n", stderr);
    return 2;
  }
  const bool quantize = std::strcmp(argv[1], "quantize") == 0;
  const bool wide = std::strcmp(argv[2], "16") == 0;
  const float scale = std::strtof(argv[3], nullptr);
  const auto zero_point = static_cast<std::int32_t>(std::strtol(argv[4], nullptr, 10));
  const std::vector<unsigned char> in = ReadAll();
  if (quantize) {
    wide ? Quantize<std::int16_t>(in, scale, zero_point) : Quantize<std::int8_t>(in, scale, zero_point);
  } else {
    wide ? Dequantize<std::int16_t>(in, scale, zero_point)
         : Dequantize<std::int8_t>(in, scale, zero_point);
  }
  return 0;
}
