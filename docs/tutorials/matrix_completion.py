# %% [markdown]
# # matrix_completion

# %%
print("todo")
