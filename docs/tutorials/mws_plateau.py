# %% [markdown]
# # mws_plateau

# %%
print("todo")
