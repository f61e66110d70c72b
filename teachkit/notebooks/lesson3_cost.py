# title en: Lesson 3 · The cost function: your J(G) on the real engine
# title zh: 第 3 课 · 代价函数：把你的 J(G) 放进真正的优化引擎
# exercise en: write `total_cost(J_content, J_style, alpha, beta)` and run teachkit's optimisation loop with it, beside teachkit's own J, from the same start.
# exercise zh: 编写 `total_cost(J_content, J_style, alpha, beta)`，用它运行 teachkit 的优化循环，并与 teachkit 自己的 J 从同一起点对比。

# %% [markdown] en
# # Lesson 3 · The cost function
#
# Gradient descent on the pixels: compute $J(G)$ with the network, compute $\partial J/\partial G$, move
# every pixel a little downhill, repeat (teachkit's engine takes L-BFGS steps, a gradient descent that
# remembers its last few gradients). In this notebook *your* $J(G)$ drives teachkit's optimisation
# loop: `exercises.transfer_with` runs the engine with your function and, from the same starting image,
# with teachkit's, and draws both.

# %% [markdown] zh
# # 第 3 课 · 代价函数
#
# 在像素上做梯度下降：用网络算出 $J(G)$，再算出 $\partial J/\partial G$，让每个像素往下坡方向挪一点，
# 然后重复（teachkit 的引擎走的是 L-BFGS 步，一种会记住最近几步梯度的梯度下降）。在这个笔记本里，驱动 teachkit 优化循环的是*你写的* $J(G)$：`exercises.transfer_with`
# 用你的函数运行优化引擎，同时从同一张起始图像出发，用 teachkit 自己的函数也运行一次，把两者画在一起。

# %%
# en: draw teachkit's figures inside the notebook
# zh: 让 teachkit 的图显示在笔记本里
# %matplotlib inline
from teachkit import exercises
from teachkit.exercises.engine import default_config
from teachkit.features import load_backbone
from teachkit.messages import set_language

set_language("__LANG__")
net = load_backbone("vgg19", device="cpu")
config = default_config(size=96, steps=15)

# %% [markdown] en
# ## Exercise: `total_cost(J_content, J_style, alpha, beta)`
#
# The same formula as in lesson 2: $J = \alpha J_{\text{content}} + \beta J_{\text{style}}$, with torch operations.

# %% [markdown] zh
# ## 练习：`total_cost(J_content, J_style, alpha, beta)`
#
# 和第 2 课的公式一样：$J = \alpha J_{\text{content}} + \beta J_{\text{style}}$，用 torch 的运算来写。

# %% exercise
def total_cost(J_content, J_style, alpha=10, beta=40):
    ### BEGIN SOLUTION
    J = alpha * J_content + beta * J_style
    ### END SOLUTION
    return J

# %% check
exercises.check_total_cost(total_cost)

# %% [markdown] en
# Now the real engine, with your J (left) and teachkit's (middle): when your function is right, the two
# pictures and the two curves are the same.

# %% [markdown] zh
# 现在运行真正的优化引擎：左边用你的 J，中间用 teachkit 的。如果你的函数是对的，两张图和两条曲线应该完全一样。

# %%
run = exercises.transfer_with("chelsea", "stained_glass", config, total_cost=total_cost, backbone=net)
print(run)
run.figure()

# %% [markdown] en
# A mistake you can *see*: swap α and β. The style now gets the content's weight and the other way round.

# %% [markdown] zh
# 一个能*看得见*的错误：把 α 和 β 对调。这样风格拿到了内容的权重，内容拿到了风格的权重。

# %%
def swapped(J_content, J_style, alpha, beta):
    return beta * J_content + alpha * J_style


print(exercises.check_total_cost(swapped))
run = exercises.transfer_with("chelsea", "stained_glass", config, total_cost=swapped, backbone=net,
                              reference=run.reference)  # teachkit's own run is the one above: reused
run.figure()

# %% [markdown] en
# **Think:** why does the swapped run keep more of the photo? Which curve falls faster at the start?

# %% [markdown] zh
# **想一想**：为什么对调之后的结果保留了更多照片的样子？一开始哪条曲线下降得更快？
