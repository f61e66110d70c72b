# title en: Lesson 4 · Content cost J_content
# title zh: 第 4 课 · 内容代价 J_content
# exercise en: write `content_cost(a_C, a_G) = 1/2·‖a(C) − a(G)‖²`, check it (values, scaling, gradient), then run the engine with it.
# exercise zh: 编写 `content_cost(a_C, a_G) = 1/2·‖a(C) − a(G)‖²`，检查它（数值、缩放、梯度），再用它运行优化引擎。

# %% [markdown] en
# # Lesson 4 · Content cost
#
# Pick a layer $l$ in the middle of the network. If the activations $a^{[l](C)}$ and $a^{[l](G)}$ of the
# two images are alike, the two images show the same things. The lecture's content cost:
#
# $$J_{\text{content}}(C, G) = \frac{1}{2}\, \big\| a^{[l](C)} - a^{[l](G)} \big\|^2 = \frac12 \sum_{\text{all entries}} \big(a^{[l](C)} - a^{[l](G)}\big)^2 .$$
#
# In teachkit an activation has the shape `(1, n_C, n_H, n_W)` (channels first, PyTorch's layout). The
# course assignment uses `(1, n_H, n_W, n_C)` and the constant $\frac{1}{4 n_H n_W n_C}$: the check below
# says which constant you wrote (pass `layout="assignment", constant="assignment"` to check that version).

# %% [markdown] zh
# # 第 4 课 · 内容代价
#
# 在网络中间选一层 $l$。如果两张图片在这一层的激活 $a^{[l](C)}$ 和 $a^{[l](G)}$ 很接近，两张图的内容就相似。
# 讲义中的内容代价是
#
# $$J_{\text{content}}(C, G) = \frac{1}{2}\, \big\| a^{[l](C)} - a^{[l](G)} \big\|^2 = \frac12 \sum_{\text{所有元素}} \big(a^{[l](C)} - a^{[l](G)}\big)^2 .$$
#
# 在 teachkit 中，激活的形状是 `(1, n_C, n_H, n_W)`（通道在前，PyTorch 的布局）。课程的编程作业用的是
# `(1, n_H, n_W, n_C)`，常数是 $\frac{1}{4 n_H n_W n_C}$：下面的检查会告诉你写的是哪个常数
# （要检查作业的写法，请传入 `layout="assignment", constant="assignment"`）。

# %%
# en: draw teachkit's figures inside the notebook
# zh: 让 teachkit 的图显示在笔记本里
# %matplotlib inline
import torch

from teachkit import exercises
from teachkit.exercises.engine import default_config
from teachkit.messages import set_language

set_language("__LANG__")

# %% [markdown] en
# ## Exercise: `content_cost(a_C, a_G)`
#
# Both arguments are torch tensors of the same shape. Return one number (a 0-dimensional tensor).

# %% [markdown] zh
# ## 练习：`content_cost(a_C, a_G)`
#
# 两个参数是形状相同的 torch 张量。返回一个数（0 维张量）。

# %% exercise
def content_cost(a_C, a_G):
    ### BEGIN SOLUTION
    J = 0.5 * torch.sum((a_C - a_G) ** 2)
    ### END SOLUTION
    return J

# %% check
exercises.check_content_cost(content_cost)

# %% [markdown] en
# What the check looks at: 0 for equal activations, the same cost when C and G are swapped, ×4 when the
# activations are doubled (a square), the values of teachkit's formula on inputs of three shapes, and the
# gradient. Try a mistake and read the answer, e.g. forget the square:

# %% [markdown] zh
# 检查的内容包括：两个激活相同时为 0；交换 C 和 G 代价不变；激活翻倍时代价变为 4 倍（因为有平方）；
# 在三种形状的输入上与 teachkit 公式的数值一致；以及梯度。故意犯个错，看看检查怎么说，比如漏掉平方：

# %%
exercises.check_content_cost(lambda a_C, a_G: 0.5 * torch.sum(torch.abs(a_C - a_G)))

# %% [markdown] en
# Your content cost on the real engine (a short run at 96 px), beside teachkit's:

# %% [markdown] zh
# 把你的内容代价放进真正的优化引擎（96 像素，跑几步），和 teachkit 的结果并排对比：

# %%
run = exercises.transfer_with("chelsea", "stained_glass", default_config(size=96, steps=10), content_cost=content_cost)
print(run)
run.figure()

# %% [markdown] en
# **Think:** why a layer in the *middle*? What would a content layer of 1 pixel (the image itself) ask of G?

# %% [markdown] zh
# **想一想**：为什么要选*中间*的层？如果内容层就是图像本身（逐像素比较），会对 G 提出什么要求？
