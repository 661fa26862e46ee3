# %% [markdown]
# # own_task

# %%
print("todo")
