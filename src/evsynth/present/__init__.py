"""Layer 6, present: what a reader sees. Plots (forest, funnel, bubble, sensitivity), the HTML
report, the summary-of-findings table (GRADE) and saved results (netCDF). Imports only the layers
below.
"""
