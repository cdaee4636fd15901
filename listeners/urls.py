from django.urls import include, path

from listeners import address_list_views, hat_views, rat_views, views

app_name = "listeners"

# Names go after a fixed word, so a listener may be called "add".
urlpatterns = [
    path("", views.listener_list, name="list"),
    path("add/", views.add_listener, name="add"),
    path("edit/<str:name>/", views.edit_listener, name="edit"),
    path("delete/<str:name>/", views.delete_listener, name="delete"),
    path("address-lists/", include(address_list_views.urlpatterns)),
    path("mail-flow-policies/", include(hat_views.policy_urlpatterns)),
    path("hat/", include(hat_views.hat_urlpatterns)),
    path("rat/", include(rat_views.urlpatterns)),
]
