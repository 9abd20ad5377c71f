// tfgen firmware: float <-> integer conversion exactly as TFLite does it.
//
// Quantize is TFLite's AffineQuantize (kernels/internal/reference/quantize.h): float32 division by
// the scale, std::round (half away from zero), add the zero point, clamp to the type's range. The
// Python side does the same (codegen/numerics.py quantize), so floats quantized here give the raw
// inputs `tfgen reference --inputs` records. Two cases TFLite leaves undefined (its int32 cast
// overflows) are defined here: values beyond +-2^30 steps saturate to the type's max/min, and NaN
// becomes the zero point (the quantized 0.0).
//
// Dequantize is TFLite's Dequantize: (q - zero_point) * scale. TFLite multiplies in double and
// casts to float; for 8- and 16-bit values the exact product fits a double, so one float multiply
// (correctly rounded, like the cast) gives the same float without double arithmetic.
//
// Header-only and free of TFLM, so it is unit-tested on its own against codegen.numerics.
#ifndef TFGEN_QUANT_H_
#define TFGEN_QUANT_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace tfgen {

template <typename T>
inline T QuantizeValue(float value, float scale, std::int32_t zero_point) {
  static_assert(std::is_integral<T>::value && std::is_signed<T>::value && sizeof(T) <= 2,
                "tfgen quantizes to int8 or int16");
  constexpr std::int32_t kMin = std::numeric_limits<T>::min();
  constexpr std::int32_t kMax = std::numeric_limits<T>::max();
  constexpr float kLimit = 1073741824.0f;  // 2^30: past the zero point and the clamp either way
  float steps = std::round(value / scale);
  std::int32_t q;
  if (std::isnan(steps)) {
    q = zero_point;
  } else {
    steps = steps > kLimit ? kLimit : (steps < -kLimit ? -kLimit : steps);
    q = static_cast<std::int32_t>(steps) + zero_point;
  }
  return static_cast<T>(q < kMin ? kMin : (q > kMax ? kMax : q));
}

template <typename T>
inline void AffineQuantize(const float* values, T* out, std::size_t count, float scale,
                           std::int32_t zero_point) {
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = QuantizeValue<T>(values[i], scale, zero_point);
  }
}

template <typename T>
inline float DequantizeValue(T q, float scale, std::int32_t zero_point) {
  static_assert(std::is_integral<T>::value && sizeof(T) <= 2,
                "exact in float only for 8- and 16-bit values");
  return static_cast<float>(static_cast<std::int32_t>(q) - zero_point) * scale;
}

template <typename T>
inline void Dequantize(const T* values, float* out, std::size_t count, float scale,
                       std::int32_t zero_point) {
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = DequantizeValue<T>(values[i], scale, zero_point);
  }
}

}  // namespace tfgen

#endif  // TFGEN_QUANT_H_
