# title en: Lesson 1 · What do deep layers see? The receptive field, layer by layer
# title zh: 第 1 课 · 深层网络在看什么？逐层计算感受野
# exercise en: write `rf_sizes(layers)`, the receptive-field size of a unit after each layer of a stack of (kernel, stride) layers, and check it on VGG19.
# exercise zh: 编写 `rf_sizes(layers)`：给定一串 (卷积核大小, 步长) 的网络层，算出每一层单元的感受野大小，并在 VGG19 上检验。

# %% [markdown] en
# # Lesson 1 · What do deep layers see?
#
# A unit of the first layer looks at a few pixels; a unit of a deep layer looks at a large part of the
# image. That window of input pixels is the unit's **receptive field**. It is why the image patches that
# excite a unit most grow with depth: edges and colours in layer 1, then textures, then parts of objects.
#
# How large is the window? Go through the layers in order. A layer with kernel size $k$ widens the window
# by $k-1$ units of *its input*, and neighbouring units of its input are $j$ pixels apart, where the
# **jump** $j$ is the product of the strides of all the layers before it:
#
# $$\text{size}_l = \text{size}_{l-1} + (k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l, \qquad \text{size}_0 = j_0 = 1.$$
#
# Padding moves the window but does not change its size.

# %% [markdown] zh
# # 第 1 课 · 深层网络在看什么？
#
# 第一层的一个单元只看到几个像素；深层的一个单元却能看到图像的一大块。一个单元能看到的那块输入像素，
# 叫作它的**感受野**。这也是为什么最能激活一个单元的图像块会随着层数变大：第一层是边缘和颜色，
# 再往后是纹理，最后是物体的局部。
#
# 感受野有多大？按顺序一层一层地看。卷积核大小为 $k$ 的一层，会让窗口多出 $k-1$ 个*输入层*的单元；
# 而输入层相邻两个单元在原图上相隔 $j$ 个像素，这个**跳步** $j$ 就是它前面所有层步长的乘积：
#
# $$\text{size}_l = \text{size}_{l-1} + (k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l, \qquad \text{size}_0 = j_0 = 1.$$
#
# 填充（padding）只会移动窗口的位置，不会改变它的大小。

# %%
import torch

from teachkit import exercises
from teachkit.messages import set_language

# en: the checks answer in the notebook's language
# zh: 检查结果用笔记本的语言显示
set_language("__LANG__")

# %% [markdown] en
# teachkit computes the receptive field of every layer of VGG19 (the network of the course) straight from
# the layers' kernel sizes and strides. Here are its first blocks:

# %% [markdown] zh
# teachkit 可以直接根据每层的卷积核大小和步长，算出 VGG19（课程里用的网络）每一层的感受野。下面是前几块：

# %%
from teachkit.features import vgg_body
from teachkit.receptive_field import format_layer_table, layer_table

# en: only the shapes of the layers: no weights are loaded
# zh: 只需要各层的形状，不加载权重
with torch.device("meta"):
    body = vgg_body("vgg19")
rows = layer_table(body)
print(format_layer_table(rows[:11]))

# %% [markdown] en
# ## Exercise: `rf_sizes(layers)`
#
# `layers` is a list of `(kernel, stride)` pairs, e.g. `[(3, 1), (3, 1), (2, 2)]` for conv1_1, conv1_2
# and pool1 of VGG19. Return a list with one number per layer: the receptive-field size (in input pixels)
# of a unit of that layer. Keep two numbers as you go: the size so far and the jump so far.

# %% [markdown] zh
# ## 练习：`rf_sizes(layers)`
#
# `layers` 是一个由 `(卷积核大小, 步长)` 组成的列表，例如 VGG19 的 conv1_1、conv1_2、pool1 就是
# `[(3, 1), (3, 1), (2, 2)]`。返回一个列表，每层一个数：这一层单元的感受野大小（以输入像素计）。
# 一边走一边记住两个数：到目前为止的大小，和到目前为止的跳步。

# %% exercise
def rf_sizes(layers):
    sizes = []
    ### BEGIN SOLUTION
    size, jump = 1, 1
    for k, s in layers:
        size += (k - 1) * jump
        jump *= s
        sizes.append(size)
    ### END SOLUTION
    return sizes

# %% check
exercises.check_receptive_field(rf_sizes)

# %% [markdown] en
# When the check passes, compare your sizes with teachkit's for the conv and pool layers of VGG19, up to pool5:

# %% [markdown] zh
# 检查通过以后，把你的结果和 teachkit 算出的 VGG19 各卷积层、池化层（直到 pool5）的感受野对比一下：

# %%
import matplotlib.pyplot as plt

from torch import nn

first = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731  (3, 3) -> 3
layers = [(first(m.kernel_size), first(m.stride)) for m in body if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
spatial = [r for r in rows if r["kind"] in ("conv", "pool")]
if exercises.check_receptive_field(rf_sizes).passed:
    mine = rf_sizes(layers)
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.bar([r["name"] for r in spatial], [r["rf_size"] for r in spatial], color="#9ecae1", label="teachkit")
    ax.plot([r["name"] for r in spatial], mine, "o", color="#cf222e", label="rf_sizes")
    ax.tick_params(axis="x", rotation=90)
    ax.set_ylabel("px")
    ax.legend()
    plt.show()

# %% [markdown] en
# **Think:** a unit of relu5_1 sees about 200 px of a 224 px image. Why then can a unit of layer 5 respond
# to a whole dog's face, while a unit of layer 1 only sees an edge?

# %% [markdown] zh
# **想一想**：relu5_1 的一个单元能看到 224 像素图像中大约 200 像素的范围。为什么第 5 层的单元能对整张狗脸
# 做出反应，而第 1 层的单元只能看到一条边缘？
