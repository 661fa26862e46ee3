# %% [markdown]
# # pretraining_series

# %%
print("todo")
