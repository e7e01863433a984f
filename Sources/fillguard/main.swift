print("fillguard")
