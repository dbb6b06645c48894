#include "engine/model/unet_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "kernels/optimizer.h"
#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::labels_for;
using test::random_vector;

struct Net {
  const char* name;
  UNetConfig config;
  Shape input;
  LossKind loss;
};
void PrintTo(const Net& n, std::ostream* os) { *os << n.name; }

UNetConfig tiny(int dims, int depth, NormChoice norm, int classes, Padding padding = Padding::same) {
  UNetConfig c;
  c.dims = dims;
  c.depth = depth;
  c.start_filters = 2;
  c.norm = norm;
  c.classes = classes;
  c.head = default_head(classes);
  c.padding = padding;
  c.in_channels = 2;
  c.seed = 5;
  // No activation kinks: a bias perturbation moves a whole channel across ReLU's
  // kink, which no per-element window can predict. The activations are checked
  // op by op (test_activation); this checks the wiring of everything else.
  c.activation = {Activation::identity, 0.f};
  return c;
}

UNetConfig pooled(UNetConfig c, std::vector<PoolWindow> pooling) {
  c.pooling = std::move(pooling);
  return c;
}

UNetConfig supervised(UNetConfig c) {
  c.deep_supervision = true;
  return c;
}

// The whole network, every parameter tensor: loss(params) by central differences
// against backward(). The objective is voxels x loss so gradients are of order one
// or more; one checker input per parameter tensor, so that a failure names the layer.
void expect_model_gradients(UNet& model, const Tensor& in, const std::vector<int32_t>& labels, const LossSpec& spec,
                            uint64_t step) {
  const Shape out = model.output_shape();
  const double k = double(out.n * out.spatial());
  const auto& table = model.param_table();
  std::vector<std::vector<float>> values, analytic;
  for (const ParamInfo& p : table) values.emplace_back(model.params() + p.offset, model.params() + p.offset + p.count);
  auto objective = [&] {
    for (size_t t = 0; t < table.size(); ++t)
      std::memcpy(model.params() + table[t].offset, values[t].data(), values[t].size() * sizeof(float));
    // With deep supervision, every level's loss at its share.
    double loss = loss_forward_backward(model.forward(in, true, step), labels.data(), model.dlogits(),
                                        with_weight(spec, model.head_weight()));
    for (const UNet::DeepOutput& d : model.deep_outputs(labels.data()))
      loss += loss_forward_backward(d.logits, d.labels, d.dlogits, with_weight(spec, d.weight));
    return k * loss;
  };
  objective();
  model.zero_grads();
  model.backward(in);
  float largest = 0;
  for (const ParamInfo& p : table) {
    analytic.emplace_back(model.grads() + p.offset, model.grads() + p.offset + p.count);
    for (float& g : analytic.back()) largest = std::max(largest, std::fabs(g = static_cast<float>(g * k)));
  }
  std::vector<test::GradInput> inputs;
  for (size_t t = 0; t < table.size(); ++t) inputs.push_back({table[t].name, &values[t], &analytic[t], nullptr});
  // Float rounding through a whole network limits the difference quotient: 2%
  // relative, with a floor that scales with the largest gradient (the first
  // layers move every voxel's loss and reach the hundreds).
  test::GradCheckOptions opt;
  opt.step = 1e-3;
  opt.tolerance = 2e-2;
  opt.floor = 0.01 * largest;
  opt.max_checks = 50;
  opt.max_failed = 0.06;
  test::expect_gradients(objective, inputs, opt);
}

class ModelGrad : public ::testing::TestWithParam<Net> {};

TEST_P(ModelGrad, MatchesFiniteDifferences) {
  const Net& net = GetParam();
  UNet model(net.config);
  model.plan(net.input);
  auto x = random_vector(net.input.count(), 1);
  const auto labels = labels_for(model.output_shape(), net.config.classes, 2);
  expect_model_gradients(model, Tensor(x.data(), net.input), labels, make_loss(net.loss, net.config.head), 3);
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, ModelGrad,
    ::testing::Values(Net{"2d_plain_softmax", tiny(2, 2, NormChoice::none, 3), shape2d(2, 2, 8, 12), LossKind::dice_ce},
                      Net{"2d_batchnorm_sigmoid", tiny(2, 2, NormChoice::batch, 2), shape2d(2, 2, 8, 8), LossKind::bce},
                      Net{"2d_valid_instance", tiny(2, 1, NormChoice::instance, 3, Padding::valid), shape2d(1, 2, 18, 20),
                          LossKind::ce},
                      Net{"3d_instance_softmax", tiny(3, 1, NormChoice::instance, 3), shape3d(1, 2, 4, 6, 4),
                          LossKind::dice_ce},
                      Net{"3d_plain_sigmoid", tiny(3, 2, NormChoice::none, 2), shape3d(2, 2, 4, 4, 8), LossKind::dice},
                      // Anisotropic pooling: thin slices pooled 2x2x1 first, then 2x2x2.
                      Net{"3d_anisotropic_instance", pooled(tiny(3, 2, NormChoice::instance, 3), {{1, 2, 2}, {2, 2, 2}}),
                          shape3d(1, 2, 2, 8, 8), LossKind::dice_ce},
                      Net{"2d_valid_anisotropic", pooled(tiny(2, 1, NormChoice::none, 2, Padding::valid), {{1, 2, 1}}),
                          shape2d(1, 2, 18, 14), LossKind::bce},
                      // Deep supervision: a head on decoder level 1 (level 2's share is 0); breaking
                      // its gradient fails every encoder tensor here.
                      Net{"2d_deep_supervision", supervised(tiny(2, 3, NormChoice::instance, 3)), shape2d(1, 2, 8, 8),
                          LossKind::dice_ce},
                      Net{"3d_deep_supervision_anisotropic",
                          supervised(pooled(tiny(3, 3, NormChoice::none, 2), {{1, 2, 2}, {1, 2, 2}, {2, 2, 2}})),
                          shape3d(1, 2, 2, 8, 8), LossKind::dice}));

// A window per level: the unpooled axis keeps its size down the net, the
// up-convolution's weights follow the window, and the error for a size that
// cannot pass names the axis's own divisor.
TEST(Model, AnisotropicPoolingKeepsTheUnpooledAxis) {
  UNetConfig c = pooled(tiny(3, 3, NormChoice::none, 2), {{1, 2, 2}, {1, 2, 2}, {2, 2, 2}});
  UNet model(c);
  model.plan(shape3d(1, 2, 6, 16, 24));
  EXPECT_EQ(model.output_shape(), shape3d(1, 1, 6, 16, 24));
  for (const UNet::Layer& L : model.layers()) {
    if (L.name == "pool1") EXPECT_EQ(L.out.shape, shape3d(1, 4, 6, 4, 6));
    if (L.name == "pool2") EXPECT_EQ(L.out.shape, shape3d(1, 8, 3, 2, 3));
  }
  const auto& table = model.param_table();
  const auto up0 = std::find_if(table.begin(), table.end(), [](const ParamInfo& p) { return p.name == "up0.weight"; });
  ASSERT_NE(up0, table.end());
  EXPECT_EQ(up0->shape, (std::vector<int64_t>{4, 2, 1, 2, 2}));
  try {
    model.plan(shape3d(1, 2, 3, 16, 24));
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("depth 3"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("divide by 2 (its poolings)"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("2 or 4"));
  }
}

// nnU-Net's shares: 1/2^l from full resolution down, the lowest level 0, normalized.
TEST(Model, DeepSupervisionWeightsAndHeads) {
  UNetConfig c = supervised(tiny(3, 5, NormChoice::none, 2));
  const std::vector<float> w = c.loss_weights();
  ASSERT_EQ(w.size(), 5u);
  const float expected[5] = {1 / 1.875f, 0.5f / 1.875f, 0.25f / 1.875f, 0.125f / 1.875f, 0};
  for (int l = 0; l < 5; ++l) EXPECT_NEAR(w[l], expected[l], 1e-6) << l;
  EXPECT_EQ(supervised(tiny(2, 1, NormChoice::none, 2)).loss_weights(), std::vector<float>{1.f});
  EXPECT_EQ(tiny(2, 3, NormChoice::none, 2).loss_weights(), std::vector<float>{1.f});
  std::vector<std::string> heads;
  UNet model(c);
  for (const UNet::Layer& L : model.layers())
    if (L.kind == UNet::LayerKind::deep_head) heads.push_back(L.name);
  EXPECT_EQ(heads, (std::vector<std::string>{"ds3", "ds2", "ds1"}));  // in forward order; ds4's share is 0
  model.plan(shape3d(1, 2, 32, 32, 32));
  const std::vector<UNet::DeepOutput> out = model.deep_outputs(std::vector<int32_t>(32 * 32 * 32, 1).data());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].logits.shape, shape3d(1, 1, 16, 16, 16));  // level 1
  EXPECT_EQ(out[2].logits.shape, shape3d(1, 1, 4, 4, 4));     // level 3
  EXPECT_FLOAT_EQ(out[0].weight, w[1]);
  c.padding = Padding::valid;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(Model, PoolingIsParsedAndChecked) {
  EXPECT_EQ(parse_pooling("2x2x1,2x2x2", 3), (std::vector<PoolWindow>{{1, 2, 2}, {2, 2, 2}}));
  EXPECT_EQ(parse_pooling("1x2", 2), (std::vector<PoolWindow>{{1, 2, 1}}));
  EXPECT_EQ(pooling_text({{1, 2, 2}, {2, 2, 2}}, 3), "2x2x1,2x2x2");
  for (const char* bad : {"2x2", "2x2x2x2", "2x2x", "a", "", "2x2x1,,2x2x2", "2x2x1;2x2x2"})
    EXPECT_THROW(parse_pooling(bad, 3), std::invalid_argument) << bad;
  UNetConfig c = tiny(3, 2, NormChoice::none, 2);
  c.pooling = {{1, 2, 2}};
  EXPECT_THROW(c.validate(), std::invalid_argument);  // one window for two levels
  c.pooling = {{1, 2, 2}, {1, 1, 1}};
  EXPECT_THROW(c.validate(), std::invalid_argument);  // a level that pools nothing
  c.pooling = {{1, 2, 2}, {3, 2, 2}};
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = tiny(2, 1, NormChoice::none, 2);
  c.pooling = {{2, 2, 2}};
  EXPECT_THROW(c.validate(), std::invalid_argument);  // a 2D net has no depth to pool
}

TEST(Model, DropoutIsPartOfTheGradient) {
  UNetConfig c = tiny(2, 2, NormChoice::none, 2);
  c.dropout = 0.3f;
  c.start_filters = 3;
  const Shape s = shape2d(1, 2, 8, 8);
  UNet model(c);
  model.plan(s);
  auto x = random_vector(s.count(), 4);
  const auto labels = labels_for(model.output_shape(), 2, 3);
  const Tensor in(x.data(), s);
  expect_model_gradients(model, in, labels, make_loss(LossKind::bce, Head::sigmoid), 9);
  // Inference applies no dropout: two calls agree, and differ from training's output.
  std::vector<float> a(model.output_shape().count()), b(a.size());
  Tensor t = model.forward(in, false);
  std::memcpy(a.data(), t.data, a.size() * sizeof(float));
  t = model.forward(in, false);
  std::memcpy(b.data(), t.data, b.size() * sizeof(float));
  EXPECT_EQ(a, b);
}

TEST(Model, ParameterTableIsContiguousAndNamed) {
  UNetConfig c;
  c.depth = 4;
  c.start_filters = 64;
  c.in_channels = 1;
  c.classes = 2;
  UNet model(c);
  int64_t next = 0;
  for (const ParamInfo& p : model.param_table()) {
    EXPECT_EQ(p.offset, next) << p.name;
    int64_t count = 1;
    for (int64_t d : p.shape) count *= d;
    EXPECT_EQ(count, p.count) << p.name;
    next += p.count;
  }
  EXPECT_EQ(next, model.parameter_count());
  // Ronneberger et al.'s U-Net with "same" padding, one output channel: 31,030,593 parameters
  // (the count PyTorch reports for the same layers).
  EXPECT_EQ(model.parameter_count(), 31030593);
  EXPECT_EQ(model.param_table().front().name, "enc0.conv0.weight");
  EXPECT_EQ(model.param_table().back().name, "head.bias");
}

TEST(Model, SameSeedSameWeights) {
  const UNetConfig c = tiny(3, 2, NormChoice::batch, 4);
  UNet a(c), b(c);
  EXPECT_TRUE(std::equal(a.params(), a.params() + a.parameter_count(), b.params()));
  UNetConfig other = c;
  other.seed = 6;
  UNet d(other);
  EXPECT_FALSE(std::equal(a.params(), a.params() + a.parameter_count(), d.params()));
}

TEST(Model, InputThatCannotPassSaysWhichSizesWould) {
  UNetConfig c;
  c.depth = 4;
  c.start_filters = 4;
  UNet model(c);
  try {
    model.plan(shape2d(1, 1, 96, 100));
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("width 100"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("96 or 112"));
  }
  c.padding = Padding::valid;
  UNet valid(c);
  EXPECT_NO_THROW(valid.plan(shape2d(1, 1, 572, 572)));  // the original paper's tile
  EXPECT_EQ(valid.output_shape().h, 388);
  EXPECT_THROW(valid.plan(shape2d(1, 1, 572, 570)), std::invalid_argument);
  EXPECT_THROW(model.plan(shape2d(1, 3, 96, 96)), std::invalid_argument);  // 3 channels for a 1-channel net
}

TEST(Model, BadConfigurationsAreNamed) {
  UNetConfig c;
  c.classes = 3;  // sigmoid head with 3 classes
  EXPECT_THROW(UNet{c}, std::invalid_argument);
  c.head = Head::softmax;
  c.depth = 0;
  EXPECT_THROW(UNet{c}, std::invalid_argument);
}

// Training end to end: Adam on one batch drives the loss down (the net can fit it).
TEST(Model, AdamStepsFitOneBatch) {
  UNetConfig c = tiny(2, 2, NormChoice::batch, 3);
  c.start_filters = 4;
  c.activation = {Activation::relu, 0.f};
  const Shape s = shape2d(2, 2, 16, 16);
  UNet model(c);
  model.plan(s);
  auto x = random_vector(s.count(), 8);
  std::vector<int32_t> labels(s.n * s.spatial());
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = x[i] > 0.3f ? 2 : (x[i] > -0.3f ? 1 : 0);  // from channel 0
  const Tensor in(x.data(), s);
  const LossSpec spec = make_loss(LossKind::dice_ce, Head::softmax);
  OptimizerSpec adam;
  std::vector<float> m(model.parameter_count(), 0.f), v(m);
  double first = 0, last = 0;
  for (int step = 1; step <= 60; ++step) {
    const double loss = loss_forward_backward(model.forward(in, true, step), labels.data(), model.dlogits(), spec);
    if (step == 1) first = loss;
    last = loss;
    model.zero_grads();
    model.backward(in);
    optimizer_step(model.params(), model.grads(), m.data(), v.data(), model.parameter_count(), adam, 1e-2f, step, 1.f);
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
}

// A batch that does not fit says what it needs and the largest batch that
// does: that batch plans, one more does not, and a failed plan left nothing
// allocated.
TEST(Model, PlanThatDoesNotFitNamesTheBatchThatFits) {
  UNetConfig c = tiny(2, 3, NormChoice::batch, 2);
  c.start_filters = 8;
  const Shape big = shape2d(16, 2, 64, 64);
  UNet probe(c);
  probe.plan(big);
  const int64_t need = probe.arena_bytes();

  UNet model(c);
  model.to(cpu_backend(need / 3));  // a third of what the plan needs
  try {
    model.plan(big);
    FAIL() << "planned " << need << " bytes within " << need / 3;
  } catch (const OutOfMemory& e) {
    const std::string what = e.what();
    EXPECT_THAT(what, ::testing::HasSubstr("a batch of 16 needs"));
    const size_t at = what.find("largest batch that fits is ");
    ASSERT_NE(at, std::string::npos) << what;
    const int fits = std::stoi(what.substr(at + 27));
    EXPECT_GE(fits, 3) << what;
    EXPECT_LT(fits, 6) << what;
    EXPECT_EQ(model.backend().peak_bytes(), 0) << "a failed plan allocated before refusing";
    Shape ok = big;
    ok.n = fits + 1;
    EXPECT_THROW(model.plan(ok), OutOfMemory) << "one more than the largest batch that fits";
    ok.n = fits;
    EXPECT_NO_THROW(model.plan(ok)) << what;
  }
}

// A backend whose memory is apart from the host's (as a GPU's): the model
// uploads its parameters, stages the batch, and brings back logits, gradients
// and running statistics exactly; moving back keeps the parameters.
TEST(Model, SeparateMemoryComputesWhatHostMemoryDoes) {
  UNetConfig c = tiny(2, 2, NormChoice::batch, 2);
  const Shape s = shape2d(2, 2, 8, 8);
  UNet a(c), b(c);
  b.to(cpu_backend(0, true));
  ASSERT_NE(b.device_params(), b.params());
  a.plan(s);
  b.plan(s);
  auto x = random_vector(s.count(), 3);
  const auto labels = labels_for(a.output_shape(), 2, 4);
  const LossSpec spec = make_loss(LossKind::dice_ce, Head::sigmoid);
  double loss[2];
  int i = 0;
  for (UNet* m : {&a, &b}) {
    m->zero_grads();
    const Tensor in = m->stage_input(x.data());
    // The CPU backend's "device" memory is host memory: the host loss reads it.
    loss[i++] = loss_forward_backward(m->forward(in, true, 1), m->stage_labels(labels.data()), m->dlogits(), spec);
    m->backward(in);
  }
  EXPECT_EQ(loss[0], loss[1]);
  const Tensor la = a.logits_on_host(), lb = b.logits_on_host();
  ASSERT_NE(la.data, lb.data);
  EXPECT_TRUE(std::equal(la.data, la.data + la.shape.count(), lb.data));
  b.copy_grads_to_host();
  b.copy_to_host();
  EXPECT_TRUE(std::equal(a.grads(), a.grads() + a.parameter_count(), b.grads()));
  EXPECT_EQ(a.state(), b.state()) << "the running statistics came back";
  EXPECT_EQ(b.input_shape(), s);
  b.to(cpu_backend());
  EXPECT_NE(b.input_shape(), s) << "a move drops the plan";
  EXPECT_EQ(b.device_params(), b.params());
  EXPECT_TRUE(std::equal(a.params(), a.params() + a.parameter_count(), b.params()));
}

}  // namespace
}  // namespace unet
