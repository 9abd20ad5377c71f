// tfgen firmware: see tfgen_softmax.h.
#include "tfgen_softmax.h"

#include <cstdint>

#include "tensorflow/lite/kernels/internal/reference/softmax.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/softmax.h"

namespace tfgen {
namespace {

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, 0);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  const tflite::SoftmaxParams& params = *static_cast<const tflite::SoftmaxParams*>(node->user_data);
  const tflite::RuntimeShape in_shape = tflite::micro::GetTensorShape(input);
  const tflite::RuntimeShape out_shape = tflite::micro::GetTensorShape(output);
  if (input->type == kTfLiteInt8 && output->type == kTfLiteInt8) {
    tflite::reference_ops::Softmax(params, in_shape, tflite::micro::GetTensorData<int8_t>(input), out_shape,
                                   tflite::micro::GetTensorData<int8_t>(output));
    return kTfLiteOk;
  }
  if (input->type == kTfLiteInt8 && output->type == kTfLiteInt16) {
    tflite::reference_ops::Softmax(params, in_shape, tflite::micro::GetTensorData<int8_t>(input), out_shape,
                                   tflite::micro::GetTensorData<int16_t>(output));
    return kTfLiteOk;
  }
  if (input->type == kTfLiteInt16) {
    tflite::reference_ops::SoftmaxInt16(params, in_shape, tflite::micro::GetTensorData<int16_t>(input),
                                        out_shape, tflite::micro::GetTensorData<int16_t>(output));
    return kTfLiteOk;
  }
  return kTfLiteError;
}

}  // namespace

TFLMRegistration Register_SOFTMAX_REFERENCE() {
  return tflite::micro::RegisterOp(tflite::SoftmaxInit, tflite::SoftmaxPrepare, Eval);
}

}  // namespace tfgen
